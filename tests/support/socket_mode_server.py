"""A local Socket Mode server: what Slack's side of Socket Mode does, for end-to-end tests of `serve`.

Point the fake Slack's `apps.connections.open` at `url`. Each connection gets Slack's `hello`; the test sends
envelopes (`slash_commands`, `interactive`, `events_api`), a `disconnect` with `refresh_requested`, or drops the
connection without a close frame, and reads the acks the client sends back (`{"envelope_id": …}`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from typing import Any

from websockets.sync.server import Server, ServerConnection, serve


class SocketModeServer:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._connections: list[ServerConnection] = []
        self.accepted = 0  # connections ever opened
        self._refreshing: list[ServerConnection] = []  # told to reconnect: closed once the new one opens
        self.sent: list[dict[str, Any]] = []  # every envelope sent to the client
        self.acks: list[dict[str, Any]] = []  # every message the client sent, in order, with its arrival time
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def __enter__(self) -> SocketModeServer:
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, name="socket-mode", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        with self._lock:
            open_now = list(self._connections)
        for connection in open_now:
            connection.close(code=1001, reason="server going away")
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=local"

    # -- one connection
    def _handle(self, connection: ServerConnection) -> None:
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "local", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0CANARYBOT"},
        }
        connection.send(json.dumps(hello))
        with self._lock:
            self._connections.append(connection)
            self.accepted += 1
            retiring, self._refreshing = self._refreshing, []
            self._lock.notify_all()
        for old in retiring:
            # As Slack does: the refreshed connection is closed once its replacement is up.
            old.close(code=1000, reason="refresh")
        try:
            for raw in connection:
                message = json.loads(raw)
                with self._lock:
                    self.acks.append({**message, "_received": time.monotonic()})
                    self._lock.notify_all()
        except Exception:
            pass
        finally:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
                self._lock.notify_all()

    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def wait_connection(self, *, after: int = 0, timeout: float = 15) -> None:
        """Wait until a connection newer than the first `after` ones is open (envelopes go to the newest)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.accepted <= after or not self._connections:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no new Socket Mode connection after {after} (accepted {self.accepted})"
                    )
                self._lock.wait(left)

    def _current(self) -> ServerConnection:
        with self._lock:
            assert self._connections, "no client connected"
            return self._connections[-1]

    # -- what Slack sends
    def send_envelope(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "",
        }
        self._current().send(json.dumps(envelope))
        with self._lock:
            self.sent.append(envelope)
        return envelope_id

    def refresh(self) -> None:
        """Slack's periodic 'disconnect' (refresh_requested): the client opens a new connection, and this one
        is closed when it does."""
        current = self._current()
        with self._lock:
            self._refreshing.append(current)
        current.send(
            json.dumps({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "local"}})
        )

    def drop(self) -> None:
        """The network drops the connection: no close frame, the socket just goes away."""
        connection = self._current()
        connection.socket.shutdown(socket.SHUT_RDWR)
        connection.socket.close()

    def wait_ack(self, envelope_id: str, *, timeout: float = 3) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for ack in self.acks:
                    if ack.get("envelope_id") == envelope_id:
                        return ack
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"envelope {envelope_id} was not acked within {timeout} s")
                self._lock.wait(left)
