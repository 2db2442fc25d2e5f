"""Slack's side of response_url, out of process: answers every POST with 200 and counts them.

Production never receives its own response_url posts: Slack does. Running the receiver in its own process keeps
its work off the bot's interpreter (and its GIL) while the HTTP benchmark measures the bot.

    with ResponseSink() as sink:
        url = sink.url("load")   # give this as response_url
        ...
        sink.wait_for(200)       # until 200 POSTs arrived (or the timeout)

Run as a script it prints its port and serves until its stdin closes; GET /count answers how many POSTs arrived.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.1 keep-alive, as Slack's hooks.slack.com answers (the default, HTTP/1.0, closes every connection).
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: without it each answer waits 40 ms

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.posts.add()
        self._answer(b"ok")

    def do_GET(self) -> None:
        self._answer(str(self.server.posts.value).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: one line per request is noise
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    posts = _Counter()


def main() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # the parent closes our stdin (or exits) when it is done with us
    server.shutdown()


class ResponseSink:
    """This module as a child process, and a client for it."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> ResponseSink:
        # Run by path: the child needs nothing from the bench package, whatever the working directory.
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()  # our own child, by its handle
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.port}/response/{key}"

    def count(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count", timeout=5) as answer:
            return int(answer.read())

    def wait_for(self, count: int, *, timeout: float) -> int:
        """Poll until `count` POSTs arrived or `timeout` passed; how many arrived."""
        deadline = time.monotonic() + timeout
        while (arrived := self.count()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return arrived


if __name__ == "__main__":
    main()
