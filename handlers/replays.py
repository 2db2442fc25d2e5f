"""Replays: a request Slack signed once is acted on once.

Anyone who captures a signed request can send it again while its timestamp is inside the 5-minute signature
window, and Bolt accepts it. Every signed request (slash command, button, form) therefore claims a key derived
from its signature and timestamp in the store before any listener runs; an identical second copy is answered
"already received" and changes nothing. Events are keyed on their `event_id` instead: Slack's retries of an
event (`X-Slack-Retry-Num`) come re-signed but carry the same event_id, in HTTP and in Socket Mode alike.

Slash commands and interactions over Socket Mode carry no signature and are not deduplicated here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable

from slack_bolt import App, BoltRequest, BoltResponse

from commands.base import Deps

log = logging.getLogger(__name__)

REPLAYED = "⚠️ This exact request was already received (a replay): it was acted on once, and is not again."


def request_key(request: BoltRequest) -> str | None:
    """'slack-event:<event_id>' for an event; else 'slack-request:<sha256>' of the signature and timestamp;
    None for an unsigned (Socket Mode) command or interaction."""
    event_id = request.body.get("event_id")
    if isinstance(event_id, str) and event_id:
        return f"slack-event:{event_id[:100]}"
    signature = _header(request, "x-slack-signature")
    timestamp = _header(request, "x-slack-request-timestamp")
    if not signature or not timestamp:
        return None
    digest = hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
    return f"slack-request:{digest}"


def register(app: App, deps: Deps) -> None:
    def once(request: BoltRequest, next: Callable[[], BoltResponse]) -> BoltResponse:
        key = request_key(request)
        if key is None or deps.store.claim(key, deps.clock.now()):
            return next()
        log.warning("replayed Slack request refused (%s)", key[:30])
        if request.body.get("command"):
            body = json.dumps({"response_type": "ephemeral", "text": REPLAYED})
            return BoltResponse(status=200, body=body, headers={"content-type": "application/json"})
        return BoltResponse(status=200, body="")

    app.use(once)


def _header(request: BoltRequest, name: str) -> str:
    values = request.headers.get(name) or []
    return values[0] if values else ""
