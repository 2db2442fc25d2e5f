"""The bot's HTTP surface, served by waitress: Slack requests, the SNS alarm intake and a health check.

Routes (`make_wsgi_app`):
    POST /slack/events, /slack/interactive, /slack/commands  -> Bolt (signature checked by Bolt)
    POST /sns                                                -> the SNS handler (raw body + headers)
    GET  /healthz                                            -> 200 {"status": "ok", ...} or 503
    anything else -> 404; a known path with the wrong method -> 405

How `canary-bot serve` should wire it:
- HTTP mode: `serve(make_wsgi_app(bolt_app, sns_handler=..., health=...), port=settings.port)` in the main
  thread.
- Socket Mode: Slack traffic arrives over the websocket, but the same server still runs on PORT, with
  `bolt_app=None`, in a `BackgroundServer` next to `SocketModeHandler(...).start()`. That keeps /healthz (the
  Dockerfile's HEALTHCHECK probes it in both modes) and /sns (when alarms arrive by SNS HTTPS) available:
  `BackgroundServer(make_wsgi_app(None, ...), host="0.0.0.0", port=settings.port).start()`; close() at exit.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from slack_bolt import App
from slack_bolt.request import BoltRequest
from waitress import wasyncore
from waitress.server import TcpWSGIServer, create_server

log = logging.getLogger(__name__)

SnsHandler = Callable[[bytes, dict[str, str]], tuple[int, str]]
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]

SLACK_PATHS: Final = frozenset({"/slack/events", "/slack/interactive", "/slack/commands"})
SNS_PATH: Final = "/sns"
HEALTH_PATH: Final = "/healthz"

# Seconds since the epoch, in ASCII digits: str.isdigit() also accepts '²', which int() then refuses.
_TIMESTAMP: Final = re.compile(r"[0-9]{1,15}")

# Slack payloads stay far below this and SNS messages are at most 256 KiB; anything bigger is not ours.
MAX_BODY_BYTES: Final = 1024 * 1024

_WAITRESS_SETTINGS: Final[dict[str, Any]] = {
    "channel_timeout": 60,  # close idle keep-alive connections; Slack gives up after 3 s anyway
    "connection_limit": 200,
    "cleanup_interval": 15,
    "max_request_body_size": MAX_BODY_BYTES,
    "clear_untrusted_proxy_headers": True,  # we trust no proxy headers unless configured
    "asyncore_use_poll": True,  # select() breaks past 1024 file descriptors
    "ident": "canary-bot",  # do not advertise the server and version
}


def make_wsgi_app(
    bolt_app: App | None,
    *,
    sns_handler: SnsHandler | None,
    health: HealthCheck,
) -> WSGIApplication:
    """Route requests to Bolt, the SNS handler and the health check. `bolt_app=None` in Socket Mode.

    Header names passed on (to Bolt and to `sns_handler`) are lower-case.
    """
    routes: dict[str, dict[str, Callable[[bytes, dict[str, str], str], _Response]]] = {
        HEALTH_PATH: {"GET": lambda _b, _h, _q: _health(health), "HEAD": lambda _b, _h, _q: _health(health)},
    }
    if bolt_app is not None:
        app = bolt_app
        for path in SLACK_PATHS:
            routes[path] = {"POST": lambda body, headers, query: _to_bolt(app, body, headers, query)}
    if sns_handler is not None:
        handler = sns_handler
        routes[SNS_PATH] = {"POST": lambda body, headers, _q: _to_sns(handler, body, headers)}

    def wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        methods = routes.get(path)
        if methods is None:
            response = _text(404, "Not Found")
        elif method not in methods:
            response = _text(405, "Method Not Allowed")
            response.headers.append(("allow", ", ".join(sorted(methods))))
        else:
            response = _dispatch(methods[method], environ)
        start_response(_status_line(response.status), response.headers)
        return [] if method == "HEAD" else [response.body]

    return wsgi_app


def serve(wsgi_app: WSGIApplication, *, port: int, host: str = "0.0.0.0", threads: int = 8) -> None:
    """Serve until the process is stopped (blocks). The production server for HTTP mode."""
    server = create_server(wsgi_app, host=host, port=port, threads=threads, **_WAITRESS_SETTINGS)
    log.info("serving HTTP on %s:%s (%d threads)", host, port, threads)
    server.run()


class BackgroundServer:
    """The same waitress server on a background thread: Socket Mode's health/SNS server, and tests.

    with BackgroundServer(app, port=0) as server:
        urlopen(f"{server.url}/healthz")
    """

    def __init__(
        self, wsgi_app: WSGIApplication, *, port: int = 0, host: str = "127.0.0.1", threads: int = 4
    ) -> None:
        # Our own socket map, so closing this server never touches another one in the process.
        self._map: dict[int, Any] = {}
        server = create_server(
            wsgi_app, map=self._map, host=host, port=port, threads=threads, **_WAITRESS_SETTINGS
        )
        if not isinstance(server, TcpWSGIServer):  # one TCP host/port gives one listening socket
            raise RuntimeError(f"expected one TCP listening socket for {host}:{port}")
        self._server = server
        self.host, bound_port = server.getsockname()
        self.port = int(bound_port)  # the real port when asked for port 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-server", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, wait for the worker threads, release the port. Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread.ident is None:  # never started: the socket is bound all the same
            self._release()
            return
        self._server.pull_trigger()  # wake the poll loop now rather than after its timeout
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self) -> None:
        # waitress's own run() loops until the socket map is empty; stepping it lets close() end it from
        # another thread, and the cleanup below then happens on the loop's own thread.
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, use_poll=True, count=1)
        finally:
            self._release()

    def _release(self) -> None:
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._map)


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def _dispatch(
    route: Callable[[bytes, dict[str, str], str], _Response], environ: WSGIEnvironment
) -> _Response:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _text(400, "Bad Content-Length")
    if length > MAX_BODY_BYTES:
        return _text(413, "Payload Too Large")
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        return route(body, _headers(environ), environ.get("QUERY_STRING", ""))
    except Exception:
        log.exception(
            "unhandled error serving %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
        )
        return _text(500, "Internal Server Error")


def _to_bolt(app: App, body: bytes, headers: dict[str, str], query: str) -> _Response:
    """Hand a request to Bolt, which checks its signature; what Bolt cannot even read is answered here.

    A timestamp that is not a number cannot carry a valid signature (401); a body Bolt cannot parse (bad JSON,
    a payload that is not an object) is a malformed request (400). Neither is our failure, so no 500.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _text(400, "Body is not UTF-8")
    if not _TIMESTAMP.fullmatch(headers.get("x-slack-request-timestamp", "").strip()):
        return _text(401, "Unauthorized")
    try:
        request = BoltRequest(body=text, query=query, headers=dict(headers))
    except Exception as exc:  # Bolt parses the body before it checks the signature
        log.warning("malformed Slack request: %s", type(exc).__name__)
        return _text(400, "Malformed request")
    bolt_response = app.dispatch(request)
    out_headers = [(name, value) for name, values in bolt_response.headers.items() for value in values]
    return _Response(bolt_response.status, out_headers, bolt_response.body.encode("utf-8"))


def _to_sns(handler: SnsHandler, body: bytes, headers: dict[str, str]) -> _Response:
    status, text = handler(body, headers)
    return _text(status, text)


def _health(check: HealthCheck) -> _Response:
    try:
        healthy, details = check()
    except Exception as exc:  # a failing check is an unhealthy process, not a 500
        log.exception("health check failed")
        healthy, details = False, {"error": type(exc).__name__}
    payload = {**details, "status": "ok" if healthy else "unavailable"}
    body = json.dumps(payload, default=str, sort_keys=True).encode("utf-8")
    headers = [("content-type", "application/json"), ("cache-control", "no-store")]
    return _Response(200 if healthy else 503, headers, body)


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        key[len("HTTP_") :].lower().replace("_", "-"): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.lower().replace("_", "-")] = str(environ[key])
    return headers


def _text(status: int, text: str) -> _Response:
    return _Response(status, [("content-type", "text/plain; charset=utf-8")], text.encode("utf-8"))


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:  # a status the stdlib does not name is still a valid status line
        return str(status)
