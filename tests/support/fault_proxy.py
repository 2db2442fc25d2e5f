"""A fault-injecting HTTP proxy in front of a moto server, for crash and outage tests of the real `serve`.

    with FaultProxy(moto_url) as proxy:            # AWS_ENDPOINT_URL=proxy.url for the process under test
        proxy.fail("UpdateAlias", throttle())      # every UpdateAlias answers 429 ThrottlingException
        held = proxy.hold("UpdateAlias")           # the next UpdateAlias waits, not yet sent to moto
        held.wait_held(timeout=10)                 # ... the bot is now blocked on it: SIGKILL it here
        proxy.forwarded("UpdateAlias")             # how many UpdateAlias calls reached moto (were applied)

Operations are named the way botocore names them, whatever the wire protocol (checked against the botocore
this suite runs, see test_fault_proxy.py):
- `X-Amz-Target: Service.Operation` (json: SQS, Logs, CloudWatch under the json protocol botocore prefers),
- `/service/<svc>/operation/<Op>` (smithy rpc-v2-cbor),
- the `Action=` form field (query: SNS, IAM),
- REST paths (Lambda's rest-json): matched against the request URIs of botocore's own service model, the
  service taken from the SigV4 credential scope. UpdateAlias is PUT /2015-03-31/functions/{fn}/aliases/{name}.

Each answer (forwarded, synthetic or fault) is written with ONE sendall: status line, headers and body
together. Separate writes meet the client's delayed ACK and cost ~40 ms per answer (shared/TESTING.md).

Actions (a Rule: operation, action, optional `times`, optional request predicate; newest rule first):
- delay(seconds): wait, then forward;
- throttle(): 429 ThrottlingException in the operation's protocol (botocore retries it, then gives up);
- server_error(): 500 InternalFailure/ServiceException (botocore retries these too: fail every attempt);
- drop(after=False): close the connection without an answer; after=True forwards first (the call landed at
  moto, its answer is lost);
- hold(when="before"|"after"): block the answer until `release()`, or until the client disconnects
  (SIGKILL): a request held "before" is then abandoned and never reaches moto; "after" it already has.
`emulate_revision_ids()` makes Lambda's alias RevisionId guard real: moto accepts any RevisionId and never
changes it, so the proxy numbers each alias's revisions itself, shows its number in GetAlias/UpdateAlias
answers, and answers 412 PreconditionFailedException (never forwarding) to an UpdateAlias carrying another.
`serve(op, fn)` answers an operation synthetically instead of forwarding it (moto cannot compute Lambda's
percentiles, so tests serve GetMetricData themselves). `rewrite(op, fn)` edits a JSON request before it is
forwarded. Every request is counted per operation (`seen`), and every one that reached moto (`forwarded`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import botocore.session

# SigV4 signing name -> botocore service name, for the services canary-bot talks to.
SIGNING_NAMES = {
    "lambda": "lambda",
    "monitoring": "cloudwatch",
    "sqs": "sqs",
    "sns": "sns",
    "logs": "logs",
    "iam": "iam",
    "sts": "sts",
}
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
)
UPSTREAM_TIMEOUT_SECONDS = 30.0
HOLD_LIMIT_SECONDS = 120.0  # a held request nobody releases is abandoned after this (never a stuck thread)
log = logging.getLogger(__name__)
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


# ---------------------------------------------------------------- the request as the proxy sees it
@dataclass(frozen=True)
class ProxiedRequest:
    operation: str
    service: str
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    protocol: str  # json, rest-json, query, smithy-rpc-v2-cbor, unknown

    def json(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


# ---------------------------------------------------------------- actions
@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class Fail:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Drop:
    after: bool = False


@dataclass
class Hold:
    """One held request (the rule's next match). Release it, or kill the client to abandon it."""

    when: Literal["before", "after"] = "before"
    _held: threading.Event = field(default_factory=threading.Event, repr=False)
    _released: threading.Event = field(default_factory=threading.Event, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)
    request: ProxiedRequest | None = None
    outcome: str | None = None  # "released", "abandoned" (client gone), "expired"

    def wait_held(self, timeout: float) -> ProxiedRequest:
        """Block until a request is being held; AssertionError after `timeout`."""
        if not self._held.wait(timeout):
            raise AssertionError(f"no request was held within {timeout}s ({self})")
        assert self.request is not None
        return self.request

    @property
    def is_held(self) -> bool:
        return self._held.is_set() and not self._finished.is_set()

    def release(self) -> None:
        self._released.set()

    def wait_finished(self, timeout: float) -> str:
        if not self._finished.wait(timeout):
            raise AssertionError(f"held request did not finish within {timeout}s")
        return self.outcome or "?"


Action = Delay | Fail | Drop | Hold


def delay(seconds: float) -> Delay:
    return Delay(seconds)


def throttle(message: str = "Rate exceeded") -> Fail:
    return Fail(429, "ThrottlingException", message)


def server_error(message: str = "We encountered an internal error. Please try again.") -> Fail:
    return Fail(500, "InternalFailure", message)


def drop(*, after: bool = False) -> Drop:
    return Drop(after=after)


def hold(when: Literal["before", "after"] = "before") -> Hold:
    return Hold(when=when)


@dataclass
class Rule:
    operation: str
    action: Action
    times: int | None = None  # None: every matching request, until removed
    when: Callable[[ProxiedRequest], bool] | None = None
    hits: int = 0

    def matches(self, request: ProxiedRequest) -> bool:
        if self.operation not in ("*", request.operation):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        return self.when is None or bool(self.when(request))


Responder = Callable[[ProxiedRequest], Answer]
Rewriter = Callable[[dict[str, Any]], dict[str, Any]]
Observer = Callable[[ProxiedRequest, Answer], None]


# ---------------------------------------------------------------- the proxy
class FaultProxy:
    def __init__(self, upstream: str, *, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self._host = host
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._responders: dict[str, Responder] = {}
        self._rewriters: dict[str, Rewriter] = {}
        self._on_upstream: list[Observer] = []
        self._on_delivered: list[Observer] = []
        self._seen: Counter[str] = Counter()
        self._forwarded: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._log: list[ProxiedRequest] = []
        self._holds: list[Hold] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._revisions: dict[str, int] | None = None  # alias path -> revision number, when emulated
        self._alias_lock = threading.Lock()

    # -- lifecycle
    def start(self) -> FaultProxy:
        server = ThreadingHTTPServer((self._host, 0), _ProxyHandler)
        server.daemon_threads = True
        server.proxy = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for held in list(self._holds):
            held.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FaultProxy is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def upstream(self) -> str:
        return f"http://{self.upstream_host}:{self.upstream_port}"

    # -- scripting
    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.insert(0, rule)
            if isinstance(rule.action, Hold):
                self._holds.append(rule.action)
        return rule

    def fail(
        self,
        operation: str,
        action: Action,
        *,
        times: int | None = None,
        when: Callable[[ProxiedRequest], bool] | None = None,
    ) -> Rule:
        """Apply `action` to the next `times` matching calls of `operation` (all of them when None)."""
        return self.add(Rule(operation, action, times=times, when=when))

    def hold(
        self,
        operation: str,
        *,
        when: Literal["before", "after"] = "before",
        match: Callable[[ProxiedRequest], bool] | None = None,
    ) -> Hold:
        """Hold the next matching call of `operation`; returns the Hold to wait on or release."""
        held = Hold(when=when)
        self.add(Rule(operation, held, times=1, when=match))
        return held

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self, operation: str | None = None) -> None:
        """Remove the rules (of one operation, or all) and release every request still held."""
        with self._lock:
            self._rules = [r for r in self._rules if operation is not None and r.operation != operation]
            holds, self._holds = self._holds, []
        for held in holds:
            held.release()

    def emulate_revision_ids(self) -> None:
        """Enforce Lambda's alias RevisionId guard (moto ignores it); see the module docstring."""
        with self._lock:
            self._revisions = {}

    def serve(self, operation: str, responder: Responder | None) -> None:
        """Answer `operation` with `responder(request)` instead of forwarding it (None: forward again)."""
        with self._lock:
            if responder is None:
                self._responders.pop(operation, None)
            else:
                self._responders[operation] = responder

    def rewrite(self, operation: str, rewriter: Rewriter | None) -> None:
        """Edit the JSON body of `operation` before it is forwarded (json protocol operations only)."""
        with self._lock:
            if rewriter is None:
                self._rewriters.pop(operation, None)
            else:
                self._rewriters[operation] = rewriter

    def observe(self, observer: Observer, *, delivered: bool) -> None:
        """Call observer(request, answer) on the proxy's thread: delivered=False for every answer moto gave
        (whether or not the client was still there to get it), delivered=True once the client got it."""
        with self._lock:
            (self._on_delivered if delivered else self._on_upstream).append(observer)

    # -- inspection
    def seen(self, operation: str) -> int:
        with self._lock:
            return self._seen[operation]

    def forwarded(self, operation: str) -> int:
        """How many calls of `operation` reached moto (for a write: were applied)."""
        with self._lock:
            return self._forwarded[operation]

    def in_flight(self, operation: str) -> int:
        """Calls of `operation` received and not answered yet (held, delayed, or waiting for moto)."""
        with self._lock:
            return self._in_flight[operation]

    def requests(self, operation: str | None = None) -> list[ProxiedRequest]:
        with self._lock:
            return [r for r in self._log if operation is None or r.operation == operation]

    def wait_idle(self, operation: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.in_flight(operation):
            if time.monotonic() > deadline:
                raise AssertionError(f"{operation} still in flight after {timeout}s")
            time.sleep(0.02)

    def wait_seen(self, operation: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.seen(operation) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} {operation} call(s) within {timeout}s, saw {self.seen(operation)}"
                )
            time.sleep(0.02)

    # -- request handling (proxy threads)
    def _decide(self, request: ProxiedRequest) -> tuple[Action | None, Responder | None, Rewriter | None]:
        with self._lock:
            self._seen[request.operation] += 1
            self._in_flight[request.operation] += 1
            self._log.append(request)
            action = None
            for rule in self._rules:
                if rule.matches(request):
                    rule.hits += 1
                    action = rule.action
                    break
            return (
                action,
                self._responders.get(request.operation),
                self._rewriters.get(request.operation),
            )

    def _count_forwarded(self, operation: str) -> None:
        with self._lock:
            self._forwarded[operation] += 1

    def _done(self, request: ProxiedRequest) -> None:
        with self._lock:
            self._in_flight[request.operation] -= 1

    def _notify(self, request: ProxiedRequest, answer: Answer, *, delivered: bool) -> None:
        with self._lock:
            observers = list(self._on_delivered if delivered else self._on_upstream)
        for observer in observers:
            try:
                observer(request, answer)
            except Exception:  # an observer must never break the proxy
                log.exception("proxy observer failed")

    def _forward(self, request: ProxiedRequest, body: bytes) -> Answer:
        if self._revisions is not None and request.operation in ("GetAlias", "UpdateAlias", "CreateAlias"):
            with self._alias_lock:
                return self._forward_guarded(request, body, self._revisions)
        return self._forward_plain(request, body)

    def _forward_guarded(self, request: ProxiedRequest, body: bytes, revisions: dict[str, int]) -> Answer:
        """The alias calls under the emulated RevisionId guard (one alias call at a time)."""
        key = urlsplit(request.path).path.rstrip("/")
        if request.operation == "CreateAlias":
            key = f"{key}/{request.json().get('Name', '')}"
        current = revisions.get(key, 0)
        if request.operation == "UpdateAlias":
            wanted = json.loads(body or b"{}").get("RevisionId")
            if wanted is not None and wanted != _revision_id(current):
                return fault_answer(
                    request,
                    Fail(
                        412,
                        "PreconditionFailedException",
                        "The RevisionId provided does not match the latest.",
                    ),
                )
        answer = self._forward_plain(request, body)
        if answer.status >= 300:
            return answer
        if request.operation != "GetAlias":
            current = revisions[key] = current + 1
        try:
            payload = json.loads(answer.body)
        except ValueError:
            return answer
        payload["RevisionId"] = _revision_id(current)
        return Answer(answer.status, answer.headers, json.dumps(payload).encode())

    def _forward_plain(self, request: ProxiedRequest, body: bytes) -> Answer:
        conn = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT_SECONDS
        )
        try:
            headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP}
            headers["content-length"] = str(len(body))
            conn.request(request.method, request.path, body=body, headers=headers)
            self._count_forwarded(request.operation)
            response = conn.getresponse()
            payload = response.read()
            out = {k.lower(): v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
            answer = Answer(response.status, out, payload)
        finally:
            conn.close()
        self._notify(request, answer, delivered=False)
        return answer


def _revision_id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


# ---------------------------------------------------------------- identifying operations
def identify(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, str, str]:
    """(service, operation, protocol) of an AWS request as botocore sends it; ("?", "?", "unknown") if not."""
    split = urlsplit(path)
    service = _service_from_auth(headers.get("authorization", ""))
    target = headers.get("x-amz-target")
    if target:
        return service, target.rsplit(".", 1)[-1], "json"
    cbor = re.fullmatch(r"/service/([^/]+)/operation/([^/]+)", split.path)
    if cbor:
        return service, cbor.group(2), "smithy-rpc-v2-cbor"
    if method == "POST" and "x-www-form-urlencoded" in headers.get("content-type", ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return service, action[0], "query"
    botocore_name = SIGNING_NAMES.get(service)
    if botocore_name is not None:
        for route_method, pattern, operation in _rest_routes(botocore_name):
            if route_method == method and pattern.fullmatch(split.path):
                return service, operation, "rest-json"
    return service, "?", "unknown"


def _service_from_auth(authorization: str) -> str:
    found = _CREDENTIAL_SCOPE.search(authorization)
    return found.group(1) if found else "?"


@cache
def _rest_routes(service: str) -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path regex, operation) from botocore's model, most specific (longest literal) first."""
    model = botocore.session.get_session().get_service_model(service)
    routes = []
    for name in model.operation_names:
        http_spec = model.operation_model(name).http
        uri = http_spec.get("requestUri", "/").split("?", 1)[0]
        literal = len(re.sub(r"\{[^}]+\}", "", uri))
        regex = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(uri))
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", regex)
        routes.append((literal, http_spec.get("method", "POST"), re.compile(regex.rstrip("/") + "/?"), name))
    routes.sort(key=lambda r: -r[0])
    return [(m, p, n) for _, m, p, n in routes]


# ---------------------------------------------------------------- fault answers per protocol
def fault_answer(request: ProxiedRequest, failure: Fail) -> Answer:
    """`failure` the way the operation's protocol reports errors, so botocore parses the code."""
    code = failure.code
    if request.service == "lambda" and code == "InternalFailure":
        code = "ServiceException"
    if request.protocol == "query":
        body = (
            f"<ErrorResponse><Error><Type>{'Sender' if failure.status < 500 else 'Receiver'}</Type>"
            f"<Code>{code}</Code><Message>{failure.message}</Message></Error>"
            "<RequestId>fault-proxy</RequestId></ErrorResponse>"
        ).encode()
        return Answer(failure.status, {"content-type": "text/xml"}, body)
    if request.protocol == "smithy-rpc-v2-cbor":
        return Answer(
            failure.status,
            {"content-type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
            cbor_text_map({"__type": code, "message": failure.message}),
        )
    payload = json.dumps({"__type": code, "message": failure.message, "Message": failure.message}).encode()
    content_type = "application/json" if request.protocol == "rest-json" else "application/x-amz-json-1.0"
    return Answer(
        failure.status,
        {"content-type": content_type, "x-amzn-errortype": f"{code}:", "x-amzn-requestid": "fault-proxy"},
        payload,
    )


def json_answer(payload: dict[str, Any], status: int = 200) -> Answer:
    return Answer(status, {"content-type": "application/x-amz-json-1.0"}, json.dumps(payload).encode())


def cbor_text_map(values: dict[str, str]) -> bytes:
    """A CBOR map of text to text (enough for an rpc-v2-cbor error body)."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")

    out = head(5, len(values))
    for key, value in values.items():
        for text in (key, value):
            raw = text.encode()
            out += head(3, len(raw)) + raw
    return out


def render(status: int, headers: dict[str, str], body: bytes) -> bytes:
    """A whole HTTP/1.1 response as one buffer (one sendall)."""
    reason = http.client.responses.get(status, "Unknown")
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k not in ("content-length", "connection")]
    lines += [f"content-length: {len(body)}", "connection: keep-alive"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _ClientGone(Exception):
    pass


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-proxy"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        service, operation, protocol = identify(self.command, self.path, headers, body)
        request = ProxiedRequest(operation, service, self.command, self.path, headers, body, protocol)
        action, responder, rewriter = proxy._decide(request)
        try:
            try:
                answer = self._answer(proxy, request, action, responder, rewriter)
            except _ClientGone:
                self.close_connection = True
                return
            except (OSError, http.client.HTTPException):
                # moto went away (or the test stopped it): the client sees a dropped connection.
                answer = None
            if answer is None:  # dropped
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            try:
                self.connection.sendall(render(answer.status, answer.headers, answer.body))
            except OSError:
                self.close_connection = True
                return
        finally:
            proxy._done(request)
        proxy._notify(request, answer, delivered=True)

    def _answer(
        self,
        proxy: FaultProxy,
        request: ProxiedRequest,
        action: Action | None,
        responder: Responder | None,
        rewriter: Rewriter | None,
    ) -> Answer | None:
        def upstream() -> Answer:
            if responder is not None:
                return responder(request)
            body = request.body
            if rewriter is not None and request.protocol == "json":
                body = json.dumps(rewriter(request.json())).encode()
            return proxy._forward(request, body)

        match action:
            case None:
                return upstream()
            case Delay(seconds=seconds):
                self._wait_or_gone(proxy, threading.Event(), seconds)
                return upstream()
            case Fail():
                return fault_answer(request, action)
            case Drop(after=after):
                if after:
                    upstream()
                return None
            case Hold():
                answer = upstream() if action.when == "after" else None
                action.request = request
                action._held.set()
                try:
                    released = self._wait_or_gone(proxy, action._released, HOLD_LIMIT_SECONDS)
                    action.outcome = "released" if released else "expired"
                except _ClientGone:
                    action.outcome = "abandoned"
                    action._finished.set()
                    raise
                action._finished.set()
                if not released:
                    return None
                return answer if answer is not None else upstream()
        raise AssertionError(f"unknown action {action!r}")

    def _wait_or_gone(self, proxy: FaultProxy, event: threading.Event, seconds: float) -> bool:
        """Wait for `event` up to `seconds`; raise _ClientGone as soon as the client hangs up."""
        deadline = time.monotonic() + seconds
        while not event.is_set():
            if proxy._stopping.is_set():
                raise _ClientGone()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.connection], [], [], min(0.05, left))
            if readable:
                try:
                    peeked = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    raise _ClientGone() from None
                if not peeked:
                    raise _ClientGone()
        return True


def iter_receipts(answer: Answer) -> Iterator[str]:
    """ReceiptHandles in an SQS ReceiveMessage answer (json protocol)."""
    try:
        payload = json.loads(answer.body or b"{}")
    except ValueError:
        return
    for message in payload.get("Messages", []) if isinstance(payload, dict) else []:
        handle = message.get("ReceiptHandle")
        if handle:
            yield str(handle)
