"""bot.outbox.ResponseUrlPoster: answers to response_urls on kept-alive connections, and through the drainer."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.clock import ManualClock
from bot.outbox import Outbox, OutboxDrainer, ResponseUrlPoster
from bot.store import SqliteStore


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict[str, Any]] = []
        self.connections = 0
        self.status = 200
        self.close_after_answer = False  # HTTP/1.1 keep-alive unless told otherwise
        self.open_sockets: list[socket.socket] = []

    def drop_idle(self) -> None:
        """Close every kept connection, as a server whose keep-alive timeout ran out."""
        for sock in self.open_sockets:
            sock.shutdown(socket.SHUT_RDWR)
        self.open_sockets.clear()

    def url(self, path: str = "/hooks/1") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1
        self.server.open_sockets.append(self.connection)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.bodies.append(json.loads(body))
        answer = b"ok" if self.server.status < 300 else b"expired_url"
        self.send_response(self.server.status)
        self.send_header("content-length", str(len(answer)))
        if self.server.close_after_answer:
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_answers_to_one_host_share_a_kept_alive_connection(receiver: _Receiver) -> None:
    poster = ResponseUrlPoster()

    answers = [poster.post(receiver.url(f"/hooks/{n}"), {"text": f"answer {n}"}) for n in range(5)]

    assert answers == [(200, "ok")] * 5
    assert [b["text"] for b in receiver.bodies] == [f"answer {n}" for n in range(5)]
    assert receiver.connections == 1


def test_a_server_that_closes_each_connection_gets_a_new_one_per_answer(receiver: _Receiver) -> None:
    receiver.close_after_answer = True
    poster = ResponseUrlPoster()

    assert [poster.post(receiver.url(), {"text": str(n)}) for n in range(3)] == [(200, "ok")] * 3
    assert receiver.connections == 3 and len(receiver.bodies) == 3


def test_a_kept_connection_closed_by_the_server_is_replaced_and_the_answer_sent_once(
    receiver: _Receiver,
) -> None:
    poster = ResponseUrlPoster()
    poster.post(receiver.url(), {"text": "first"})
    receiver.drop_idle()  # the kept connection is closed before it carries a second request
    time.sleep(0.1)  # its FIN arrives

    assert poster.post(receiver.url(), {"text": "second"}) == (200, "ok")
    assert [b["text"] for b in receiver.bodies] == ["first", "second"]
    assert receiver.connections == 2


def test_an_error_status_is_returned_with_its_body(receiver: _Receiver) -> None:
    receiver.status = 404

    assert ResponseUrlPoster().post(receiver.url(), {"text": "late"}) == (404, "expired_url")


def test_no_answer_at_all_is_an_oserror_the_drainer_retries() -> None:
    with pytest.raises(OSError):
        ResponseUrlPoster(timeout=2).post("http://127.0.0.1:9/hooks/1", {"text": "nobody listens"})


def test_the_drainer_delivers_a_burst_of_answers_in_order_on_one_connection(
    receiver: _Receiver, tmp_path: Path
) -> None:
    clock = ManualClock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    with SqliteStore(tmp_path / "outbox.db") as store:
        outbox = Outbox(store, clock)
        drainer = OutboxDrainer(store, WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/"), clock)
        for n in range(20):
            outbox.respond(url=receiver.url("/hooks/same"), params={"text": f"answer {n}"})

        assert drainer.drain() == 20

        assert [b["text"] for b in receiver.bodies] == [f"answer {n}" for n in range(20)]
        assert all("url" not in b for b in receiver.bodies)
        assert receiver.connections == 1
        assert store.outbox_pending() == 0
