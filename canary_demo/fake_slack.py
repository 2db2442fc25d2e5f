"""A fake Slack Web API server for tests (the way slack-bolt tests itself, but recording and scriptable).

    with FakeSlack(usergroups={"S0SRE": ["U0ALICE", "U0BOB"]}) as slack:
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        client.chat_postMessage(channel="C0DEPLOYS", text="hi")
        assert slack.calls("chat.postMessage")[0].params["text"] == "hi"

Or as a pytest fixture:

    @pytest.fixture
    def slack() -> Iterator[FakeSlack]:
        with FakeSlack() as fake:
            yield fake

What it records (`calls()`): every Web API method by name ("chat.postMessage"), every POST to a response_url
(method "response_url", see `response_url()`), and every upload to a files.getUploadURLExternal URL (method
"file_upload"). Form bodies and JSON bodies parse alike: JSON-typed form fields (blocks, attachments, view,
files, metadata) are decoded, so `params["blocks"]` is a list whichever way slack_sdk sent it. Header names
are lower-cased.

Failure injection: `fail_next("chat.postMessage", status=429, retry_after=1)` (or 500, or status=200 with
error="channel_not_found" for a Slack-level error), `times=N` for N failures in a row. `fail_all(500)` makes
every call (of the methods given, or all of them, response_url posts and auth.test included) fail until
`recover()`: Slack down. `hold_next("chat.postMessage")` blocks the next such call before it takes effect,
until `release()` (it then takes effect) or `abandon_holds()` (it never does: the caller was killed).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT_USER_ID = "U0CANARYBOT"
BOT_ID = "B0CANARYBOT"
TEAM_ID = "T0FAKETEAM"
APP_ID = "A0CANARYBOT"

# Form fields slack_sdk sends JSON-encoded (see slack_sdk.web.internal_utils._parse_web_class_objects).
_JSON_FORM_FIELDS = frozenset({"blocks", "attachments", "view", "files", "metadata", "unfurls"})
_FIRST_TS_MICROS = 1_700_000_000_000_100


@dataclass(frozen=True)
class RecordedCall:
    method: str  # "chat.postMessage", "response_url", "file_upload"
    params: dict[str, Any]
    headers: dict[str, str]
    path: str
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class PostedMessage:
    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    updates: int = 0  # how many times chat.update rewrote it
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class UploadedFile:
    file_id: str
    filename: str
    title: str | None
    content: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: float | None
    error: str


@dataclass
class SlackHold:
    """One held call: `wait_held()` until it arrives, then `release()` (it takes effect) or abandon it."""

    method: str
    match: Callable[[RecordedCall], bool] | None = field(default=None, repr=False)
    _held: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    abandoned: bool = False

    def wait_held(self, timeout: float) -> None:
        if not self._held.wait(timeout):
            raise AssertionError(f"no {self.method} call was held within {timeout}s")

    @property
    def is_held(self) -> bool:
        return self._held.is_set() and not self._done.is_set()

    def release(self) -> None:
        self._done.set()

    def abandon(self) -> None:
        self.abandoned = True
        self._done.set()


# A held call nobody releases gives up after this, so no server thread is stuck for ever.
HOLD_LIMIT_SECONDS = 120.0


@dataclass
class _PendingUpload:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None


class FakeSlack:
    """The fake server; thread-safe, so listeners on Bolt's worker threads can call it."""

    def __init__(
        self,
        *,
        usergroups: Mapping[str, Sequence[str]] | None = None,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        channels: Mapping[str, str] | None = None,
        bot_user_id: str = BOT_USER_ID,
        team_id: str = TEAM_ID,
    ) -> None:
        """`usergroups`: group ID → member IDs. `users`: user ID → fields merged over a generated profile.
        `channels`: "#name" (or "name") → channel ID; unknown "#names" get a stable generated ID."""
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}
        self.users: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (users or {}).items()}
        self._channel_ids = {name.lstrip("#"): cid for name, cid in (channels or {}).items()}
        # apps.connections.open answers this WebSocket URL (a local Socket Mode server, in tests).
        self.socket_mode_url: str | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._down: tuple[_Failure, frozenset[str] | None] | None = None
        self._holds: list[SlackHold] = []
        self._clear()

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        # A short poll interval keeps stop() (which waits for the loop to notice) fast in every test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.abandon_holds()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """What to pass as WebClient(base_url=...) or SLACK_API_URL."""
        return f"{self.root_url}/api/"

    def response_url(self, key: str = "default") -> str:
        """A response_url for payloads; POSTs to it are recorded as method "response_url"."""
        return f"{self.root_url}/response/{key}"

    # -- scripting ------------------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: float | None = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with `status` (429 carries Retry-After) or a Slack error.

        status=200 with error="..." gives Slack's usual {"ok": false, "error": ...} at HTTP 200.
        """
        default_error = {429: "ratelimited", 200: "fatal_error"}.get(status, "internal_error")
        failure = _Failure(
            status=status, retry_after=retry_after if status == 429 else None, error=error or default_error
        )
        with self._lock:
            self._failures.setdefault(method, []).extend([failure] * times)

    def fail_all(
        self, status: int = 500, *, methods: Sequence[str] | None = None, retry_after: float | None = 1
    ) -> None:
        """Every call of `methods` (None: every method, response_url posts and uploads too) answers `status`
        until recover()."""
        failure = _Failure(
            status=status,
            retry_after=retry_after if status == 429 else None,
            error={429: "ratelimited", 200: "fatal_error"}.get(status, "internal_error"),
        )
        with self._lock:
            self._down = (failure, None if methods is None else frozenset(methods))

    def recover(self) -> None:
        """Slack is back: fail_all() ends (fail_next() failures still queued stay)."""
        with self._lock:
            self._down = None

    def hold_next(self, method: str, match: Callable[[RecordedCall], bool] | None = None) -> SlackHold:
        """Hold the next call of `method` (that `match`es, if given) before it takes effect; it is recorded
        in calls() at once."""
        held = SlackHold(method, match)
        with self._lock:
            self._holds.append(held)
        return held

    def abandon_holds(self) -> None:
        """Give up every held call without effect (its caller is gone): nothing is posted for it."""
        with self._lock:
            holds, self._holds = self._holds, []
        for held in holds:
            held.abandon()

    def reset(self) -> None:
        """Forget calls, messages, views, uploads and pending failures (the configuration stays)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._calls: list[RecordedCall] = []
        self._delivered: list[RecordedCall] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._down = None
        self._messages: dict[tuple[str, str], PostedMessage] = {}
        self._home_views: dict[str, dict[str, Any]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, _PendingUpload] = {}
        self._completed_files: list[UploadedFile] = []
        self._counter = 0

    # -- inspection -----------------------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def delivered_responses(self) -> list[RecordedCall]:
        """response_url posts that were answered 200 (not failed, not abandoned): what the person saw."""
        with self._lock:
            return list(self._delivered)

    def wait_for(self, method: str, count: int = 1, timeout: float = 2.0) -> list[RecordedCall]:
        """Block until `count` calls of `method` were recorded (listeners run on worker threads)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self._calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self._calls]
                    raise AssertionError(
                        f"expected {count} {method} call(s) within {timeout}s, got {len(found)}; "
                        f"calls so far: {seen}"
                    )
                self._changed.wait(left)

    def messages(self, channel: str | None = None) -> list[PostedMessage]:
        """Messages posted with chat.postMessage, in posting order, as last updated by chat.update."""
        with self._lock:
            return [m for m in self._messages.values() if channel is None or m.channel == channel]

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        """The last view published to `user_id`'s App Home."""
        with self._lock:
            return self._home_views.get(user_id)

    def uploaded_files(self) -> list[UploadedFile]:
        """Files whose upload was completed with files.completeUploadExternal."""
        with self._lock:
            return list(self._completed_files)

    def channel_id(self, channel: str) -> str:
        """The ID Slack would resolve `channel` ("#deploys", "deploys" or an ID) to."""
        with self._lock:
            return self._resolve_channel(channel)

    # -- request handling (called on server threads) --------------------------------------------------------

    def _handle(
        self, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/api/"):
            method = path[len("/api/") :]
            params = _parse_params(body, headers.get("content-type", ""), query)
        elif path.startswith("/response/"):
            method = "response_url"
            params = _parse_params(body, headers.get("content-type", "application/json"), query)
        elif path.startswith("/upload/"):
            method = "file_upload"
            params = {"file_id": path[len("/upload/") :], "size": len(body)}
        else:
            return 404, {"content-type": "text/plain"}, b"Not Found"

        call = RecordedCall(method=method, params=params, headers=headers, path=path, body=body)
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()
            held = next(
                (
                    h
                    for h in self._holds
                    if h.method == method and not h._held.is_set() and (h.match is None or h.match(call))
                ),
                None,
            )
        if held is not None:
            held._held.set()
            held._done.wait(HOLD_LIMIT_SECONDS)
            with self._lock:
                if held in self._holds:
                    self._holds.remove(held)
            if held.abandoned or not held._done.is_set():
                return _failure_response(_Failure(status=500, retry_after=None, error="abandoned"))
        with self._changed:
            if self._down is not None and (self._down[1] is None or method in self._down[1]):
                return _failure_response(self._down[0])
            failure = self._pop_failure(method)
            if failure is not None:
                return _failure_response(failure)
            if method == "response_url":
                self._delivered.append(call)
                return 200, {"content-type": "text/plain"}, b"ok"
            if method == "file_upload":
                return self._receive_upload(params["file_id"], body)
            # apps.connections.open takes the app-level token (xapp-…); every other method a bot token.
            wanted = "Bearer xapp-" if method == "apps.connections.open" else "Bearer xox"
            if not headers.get("authorization", "").startswith(wanted):
                return _json(200, {"ok": False, "error": "not_authed"})
            return _json(200, self._answer(method, params))

    def _pop_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        return queue.pop(0) if queue else None

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = _METHODS.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(self, params)

    def _next_ts(self) -> str:
        micros = _FIRST_TS_MICROS + self._counter * 100
        self._counter += 1
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter:09d}"

    def _resolve_channel(self, channel: str) -> str:
        if _looks_like_id(channel, "CGD"):
            return channel
        if _looks_like_id(channel, "UW"):  # posting to a user ID lands in the DM with the bot
            return "D" + channel[1:]
        name = channel.lstrip("#")
        if name not in self._channel_ids:
            self._channel_ids[name] = f"C{zlib.crc32(name.encode()):010d}"
        return self._channel_ids[name]

    def _channel_name(self, channel_id: str) -> str:
        for name, cid in self._channel_ids.items():
            if cid == channel_id:
                return name
        return f"channel-{channel_id.lower()}"

    def _receive_upload(self, file_id: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        pending = self._uploads.get(file_id)
        if pending is None:
            return 404, {"content-type": "text/plain"}, b"upload URL not found"
        pending.content = body
        return 200, {"content-type": "text/plain"}, f"OK - {len(body)}".encode()

    # -- Web API methods ------------------------------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "canary-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks") and not params.get("attachments"):
            return {"ok": False, "error": "no_text"}
        channel = self._resolve_channel(str(params["channel"]))
        ts = self._next_ts()
        message = PostedMessage(
            channel=channel,
            ts=ts,
            text=params.get("text"),
            blocks=params.get("blocks"),
            thread_ts=params.get("thread_ts") or None,
            metadata=params.get("metadata") if isinstance(params.get("metadata"), dict) else None,
        )
        self._messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": self._message_json(message)}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel after `oldest`, newest first (metadata only when asked)."""
        channel = self._resolve_channel(str(params.get("channel", "")))
        oldest = float(params.get("oldest") or 0)
        found = [
            m
            for (c, ts), m in self._messages.items()
            if c == channel and m.thread_ts is None and float(ts) > oldest
        ]
        return self._listing(found, params)

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent and the replies after `oldest`."""
        channel = self._resolve_channel(str(params.get("channel", "")))
        parent, oldest = str(params.get("ts", "")), float(params.get("oldest") or 0)
        if (channel, parent) not in self._messages:
            return {"ok": False, "error": "thread_not_found"}
        found = [
            m
            for (c, ts), m in self._messages.items()
            if c == channel and (ts == parent or (m.thread_ts == parent and float(ts) > oldest))
        ]
        return self._listing(found, params)

    def _listing(self, found: list[PostedMessage], params: dict[str, Any]) -> dict[str, Any]:
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        listed = []
        for m in sorted(found, key=lambda m: float(m.ts), reverse=True):
            body = self._message_json(m)
            if not with_metadata:
                body.pop("metadata", None)
            listed.append(body)
        return {"ok": True, "messages": listed, "has_more": False}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        current = self._messages.get((channel, ts))
        if current is None:
            # Slack wants the channel ID here, not "#name": the fake refuses names the same way.
            known_channel = any(c == channel for c, _ in self._messages)
            return {"ok": False, "error": "message_not_found" if known_channel else "channel_not_found"}
        updated = replace(
            current,
            text=params.get("text", current.text),
            blocks=params.get("blocks", current.blocks),
            updates=current.updates + 1,
        )
        self._messages[(channel, ts)] = updated
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": updated.text or "",
            "message": self._message_json(updated),
        }

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel") or not params.get("user"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params.get("channel", "")), str(params.get("message_ts", ""))
        if not channel or not ts:
            return {"ok": False, "error": "invalid_arguments"}
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://fake-workspace.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_mode_url:
            return {"ok": False, "error": "socket_mode_not_enabled"}
        return {"ok": True, "url": self.socket_mode_url}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id, view = params.get("user_id"), params.get("view")
        if not user_id or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        stored = self._store_view(view, view_id=None)
        self._home_views[str(user_id)] = stored
        return {"ok": True, "view": stored}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = params.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": self._store_view(view, view_id=None)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        view_id = params.get("view_id")
        if view_id is None and params.get("external_id"):
            view_id = next(
                (vid for vid, v in self._views.items() if v.get("external_id") == params["external_id"]), None
            )
        if view_id not in self._views:
            return {"ok": False, "error": "not_found"}
        return {"ok": True, "view": self._store_view(view, view_id=str(view_id))}

    def _store_view(self, view: dict[str, Any], *, view_id: str | None) -> dict[str, Any]:
        vid = view_id or self._next_id("V")
        stored = {
            "id": vid,
            "team_id": self.team_id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "hash": f"{int(time.time())}.{self._counter:08d}",
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            **view,
        }
        self._views[vid] = stored
        return stored

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("usergroup")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[str(group)])}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = str(params.get("user", ""))
        if user_id not in self.users and not (user_id[:1] in ("U", "W") and len(user_id) > 1):
            return {"ok": False, "error": "user_not_found"}
        name = user_id.lower()
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": name.title(),
            "tz": "Etc/UTC",
            "is_bot": False,
            "deleted": False,
            "profile": {"display_name": name, "real_name": name.title()},
        }
        user.update(self.users.get(user_id, {}))
        return {"ok": True, "user": user}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        channel_id = self._resolve_channel(channel)
        return {
            "ok": True,
            "channel": {
                "id": channel_id,
                "name": self._channel_name(channel_id),
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": True,
            },
        }

    def _files_get_upload_url_external(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename or length is None:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._next_id("F")
        self._uploads[file_id] = _PendingUpload(file_id=file_id, filename=str(filename), length=int(length))
        return {"ok": True, "upload_url": f"{self.root_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        pendings = [self._uploads.get(str(f.get("id"))) for f in files]
        if any(p is None or p.content is None for p in pendings):
            return {"ok": False, "error": "file_not_found"}
        channel = params.get("channel_id") or None
        answered = []
        for entry, pending in zip(files, pendings, strict=True):
            assert pending is not None and pending.content is not None
            title = entry.get("title") or pending.filename
            self._completed_files.append(
                UploadedFile(
                    file_id=pending.file_id,
                    filename=pending.filename,
                    title=title,
                    content=pending.content,
                    channel=channel,
                    thread_ts=params.get("thread_ts") or None,
                    initial_comment=params.get("initial_comment") or None,
                )
            )
            answered.append(
                {
                    "id": pending.file_id,
                    "name": pending.filename,
                    "title": title,
                    "size": len(pending.content),
                    "permalink": f"https://fake-workspace.slack.com/files/{self.bot_user_id}/{pending.file_id}",
                }
            )
        return {"ok": True, "files": answered}

    def _message_json(self, message: PostedMessage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": self.team_id,
            "ts": message.ts,
            "text": message.text or "",
        }
        if message.blocks is not None:
            out["blocks"] = message.blocks
        if message.thread_ts:
            out["thread_ts"] = message.thread_ts
        if message.metadata is not None:
            out["metadata"] = message.metadata
        return out


_METHODS = {
    "apps.connections.open": FakeSlack._apps_connections_open,
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._chat_post_message,
    "chat.update": FakeSlack._chat_update,
    "chat.postEphemeral": FakeSlack._chat_post_ephemeral,
    "chat.getPermalink": FakeSlack._chat_get_permalink,
    "views.publish": FakeSlack._views_publish,
    "views.open": FakeSlack._views_open,
    "views.update": FakeSlack._views_update,
    "usergroups.users.list": FakeSlack._usergroups_users_list,
    "users.info": FakeSlack._users_info,
    "conversations.info": FakeSlack._conversations_info,
    "conversations.history": FakeSlack._conversations_history,
    "conversations.replies": FakeSlack._conversations_replies,
    "files.getUploadURLExternal": FakeSlack._files_get_upload_url_external,
    "files.completeUploadExternal": FakeSlack._files_complete_upload_external,
}


def _looks_like_id(value: str, prefixes: str) -> bool:
    return len(value) > 1 and value[0] in prefixes and value.isalnum() and value.isupper()


def _parse_params(body: bytes, content_type: str, query: str) -> dict[str, Any]:
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
    if not body:
        return params
    text = body.decode("utf-8")
    if "json" in content_type or text.lstrip().startswith("{"):
        params.update(json.loads(text))
        return params
    for key, values in parse_qs(text, keep_blank_values=True).items():
        value: Any = values[0]
        if key in _JSON_FORM_FIELDS:
            with contextlib.suppress(ValueError):  # a plain string where Slack also accepts one
                value = json.loads(value)
        params[key] = value
    return params


def _json(status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json; charset=utf-8"}, json.dumps(payload).encode()


def _failure_response(failure: _Failure) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = _json(failure.status, {"ok": False, "error": failure.error})
    if failure.retry_after is not None:
        headers["retry-after"] = str(int(failure.retry_after))
    return status, headers, body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, response_headers, payload = fake._handle(parts.path, parts.query, headers, body)
        self.send_response(status)
        for name, value in response_headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        # Status line, headers and body in ONE send: separate writes meet the client's delayed ACK and add
        # ~40 ms to every answer (shared/TESTING.md).
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the recorded calls when it matters."""
