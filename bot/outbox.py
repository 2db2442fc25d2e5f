"""The outbox: every Slack message the bot sends is a row first, delivered by a drainer, retried across restarts.

- `Outbox.post / update / upload` write rows (nothing is sent on the caller's thread unless the outbox is
  inline): a traffic change never waits on Slack, and a message Slack refused for an hour still goes out.
- Rows are delivered in order per lane (one lane per deployment): a reply never overtakes its parent, an edit
  never overtakes the post it edits. A reply names its parent by key (`thread_of`); the drainer fills in the
  parent's `ts` once Slack has returned it, and records the parent's ts on the deployment.
- Each row is sent once: its key is unique (an event told twice is enqueued once) and the `ts` Slack returns
  is recorded. A crash in the milliseconds between Slack's answer and that record can repeat one message.
- Transient failures (429, 5xx, network) back off exponentially with jitter, without limit; permanent ones
  (channel_not_found, invalid_blocks, …) end the row as dead, logged, so the lane moves on.
- The alert fan-out's SNS messages (bot.sns_fanout) are rows too (`sns_publish`, one lane per topic), keyed
  per (event, topic): queued once, published by the drainer's TopicPublisher, retried the same way. SNS
  Publish has no idempotency key on standard topics, so a crash between SNS's answer and the record repeats
  that one message; FIFO topics get a MessageDeduplicationId derived from the key, and SNS drops the repeat.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import threading
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import urllib3
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.outbox_model import OutboxMessage
from bot.ports import AwsFailure, Clock, StorePort, TopicGone, TopicPublisher

log = logging.getLogger(__name__)

# Slack errors that no retry can fix: the row is given up (and logged), the lane moves on.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_arguments",
    }
)
# Short: once Slack is back, every queued message should follow within seconds (429s carry their own wait).
RETRY_CAP = timedelta(seconds=15)
# Every post carries its outbox key in Slack message metadata, so a post cut short by a crash can be found.
METADATA_EVENT = "canary_bot_outbox"
RESPONSE_URL_LIFETIME = timedelta(minutes=30)


class _ResponseUrlError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class ResponseUrlPoster:
    """POSTs answers to response_urls on kept-alive connections: urllib3's pool (already installed with
    botocore) rather than slack_sdk's WebhookClient, which opens a connection (and TLS) per answer.

    All of a workspace's response_urls are on one host (hooks.slack.com): a connection per answer made the
    drainer deliver ~10 answers a second under load (bench/README.md, "Answers delivered"). urllib3 checks a
    kept connection before reusing it (one the server closed meanwhile is replaced) and verifies TLS. A POST is
    never resent by the pool (read retries off): a lost answer is the drainer's to retry, in order. Where a
    proxy is configured (HTTPS_PROXY…), answers go through WebhookClient as before.
    """

    def __init__(self, *, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=4,
            timeout=urllib3.Timeout(total=timeout),
            retries=urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0),
        )

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, str]:
        """The status and body of Slack's answer. Raises OSError when no answer came."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or _proxied(url, parts.scheme):
            answer = WebhookClient(url, timeout=round(self._timeout)).send_dict(body)
            return answer.status_code, answer.body
        try:
            response = self._pool.request(
                "POST",
                url,
                body=json.dumps(body).encode("utf-8"),
                headers={"Content-Type": "application/json;charset=utf-8", "User-Agent": "canary-bot"},
            )
        except urllib3.exceptions.HTTPError as exc:  # not an OSError: the drainer retries OSErrors
            raise ConnectionError(f"response_url: {type(exc).__name__}: {exc}") from exc
        return response.status, response.data.decode("utf-8", errors="replace")


def _proxied(url: str, scheme: str) -> bool:
    proxies = urllib.request.getproxies()
    host = urlsplit(url).hostname or ""
    return scheme in proxies and not urllib.request.proxy_bypass(host)


@dataclass(frozen=True)
class Thread:
    """Where a reply goes: a known ts, or the key of the outbox post whose ts it will be."""

    ts: str | None = None
    key: str | None = None


def parent_key(deployment_id: str) -> str:
    return f"parent:{deployment_id}"


def lane_of(deployment_id: str | None, channel: str) -> str:
    return f"deployment:{deployment_id}" if deployment_id else f"channel:{channel}"


def topic_lane(topic_arn: str) -> str:
    """One lane per SNS topic: a topic that fails holds back only its own messages, in order."""
    return f"topic:{topic_arn}"


def dedup_id(key: str) -> str:
    """A FIFO topic's MessageDeduplicationId for an outbox row (at most 128 characters, from its key)."""
    return hashlib.sha256(key.encode()).hexdigest()


class Outbox:
    def __init__(
        self,
        store: StorePort,
        clock: Clock,
        *,
        wake: Callable[[], object] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._wake = wake or (lambda: None)

    def post(
        self,
        *,
        lane: str,
        channel: str,
        params: dict[str, Any],
        key: str | None = None,
        thread: Thread | None = None,
        thread_for_deployment: str | None = None,
    ) -> bool:
        """Queue a chat.postMessage. Returns False when the key was already queued (told once)."""
        payload = {"channel": channel, **params}
        if thread is not None and thread.ts:
            payload["thread_ts"] = thread.ts
        added = self._enqueue(
            "post",
            lane=lane,
            key=key,
            params=payload,
            thread_of=thread.key if thread is not None and not thread.ts else None,
            thread_for_deployment=thread_for_deployment,
        )
        self._wake()
        return added

    def update(self, *, lane: str, channel: str, target: Thread, params: dict[str, Any]) -> None:
        """Queue a chat.update of the message `target` names (by ts, or by the key of its outbox post)."""
        payload = {"channel": channel, **params}
        if target.ts:
            payload["ts"] = target.ts
        self._enqueue("update", lane=lane, params=payload, thread_of=None if target.ts else target.key)
        self._wake()

    def upload(self, *, lane: str, channel: str, thread: Thread, file: bytes, params: dict[str, Any]) -> None:
        payload = {"channel": channel, "file_b64": base64.b64encode(file).decode("ascii"), **params}
        if thread.ts:
            payload["thread_ts"] = thread.ts
        self._enqueue("upload", lane=lane, params=payload, thread_of=None if thread.ts else thread.key)
        self._wake()

    def respond(self, *, url: str, params: dict[str, Any], key: str | None = None) -> None:
        """Queue an answer to a response_url (a slash command's or a click's), in order per URL."""
        key = key or f"respond:{uuid.uuid4().hex}"
        self._enqueue("respond", lane=f"respond:{url}", params={"url": url, **params}, key=key)
        self._wake()

    def publish_to_topic(self, *, topic_arn: str, subject: str, message: str, key: str) -> bool:
        """Queue an SNS Publish (the alert fan-out). Returns False when the key was already queued."""
        added = self._enqueue(
            "sns_publish",
            lane=topic_lane(topic_arn),
            key=key,
            params={"topic_arn": topic_arn, "subject": subject, "message": message},
        )
        self._wake()
        return added

    def has(self, key: str) -> bool:
        return self._store.outbox_message(key) is not None

    def _enqueue(
        self,
        method: str,
        *,
        lane: str,
        params: dict[str, Any],
        key: str | None = None,
        thread_of: str | None = None,
        thread_for_deployment: str | None = None,
    ) -> bool:
        now = self._clock.now()
        return self._store.enqueue(
            OutboxMessage(
                key=key or f"{method}:{uuid.uuid4().hex}",
                lane=lane,
                method=method,
                params=params,
                thread_of=thread_of,
                thread_for_deployment=thread_for_deployment,
                next_attempt_at=now,
                created_at=now,
            )
        )


class OutboxDrainer:
    """Delivers due rows, lane by lane, in order. Safe to call from several threads (one drains at a time).

    `client` delivers the Slack rows and `topics` the SNS ones; a drainer without one leaves those rows, untouched,
    to a drainer that has it (the CLI without a Slack token, say).
    """

    def __init__(
        self,
        store: StorePort,
        client: WebClient | None,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        owner: str | None = None,
        lane_lease: timedelta = timedelta(seconds=30),
        topics: TopicPublisher | None = None,
    ):
        self._store = store
        self._has_slack = client is not None
        self._client = cast(WebClient, client)  # only called when _has_slack
        self._topics = topics
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        # Replicas drain the same outbox: a lane is delivered by one of them at a time (a lease per lane), so
        # two never send the same row.
        self._owner = owner or f"outbox-{uuid.uuid4().hex[:12]}"
        self._lane_lease = lane_lease.total_seconds()
        self._lane_locks = [threading.Lock() for _ in range(64)]
        self._responses = ResponseUrlPoster()

    def drain(self, limit: int = 500) -> int:
        """Send what is due now; returns how many were delivered."""
        if not self._lock.acquire(blocking=False):
            return 0  # another thread is draining; it will pick up what was just queued
        try:
            sent = 0
            for _ in range(limit):
                heads = self._store.outbox_heads(self._clock.now())
                if not heads:
                    break
                progressed = False
                for message in heads:
                    outcome = self._deliver_leased(message)
                    sent += outcome == "sent"
                    progressed = progressed or outcome != "waiting"
                if not progressed:
                    break
            return sent
        finally:
            self._lock.release()

    def _deliver_leased(self, message: OutboxMessage) -> Literal["sent", "dead", "waiting"]:
        if not (self._topics is not None if message.method == "sns_publish" else self._has_slack):
            return "waiting"  # for a drainer with the client this row needs: not even its lane's lease
        # Threads of this process share the lease's owner, so they also take the lane's (striped) lock.
        lane_lock = self._lane_locks[hash(message.lane) % len(self._lane_locks)]
        if not lane_lock.acquire(blocking=False):
            return "waiting"
        try:
            return self._deliver_under_lease(message)
        finally:
            lane_lock.release()

    def _deliver_under_lease(self, message: OutboxMessage) -> Literal["sent", "dead", "waiting"]:
        lease = f"outbox:{message.lane}"
        if self._store.acquire_lease(lease, self._owner, self._clock.now(), self._lane_lease) is None:
            return "waiting"  # another replica is delivering this lane
        try:
            # Read again under the lease: the other replica may have sent it just before.
            fresh = self._store.outbox_message(message.key)
            if fresh is None or fresh.status != "pending":
                return "waiting"
            return self._deliver(fresh)
        finally:
            self._store.release_lease(lease, self._owner)

    def _deliver(self, message: OutboxMessage) -> Literal["sent", "dead", "waiting"]:
        if message.method == "sns_publish":
            return self._publish(message)
        params = dict(message.params)
        if message.thread_of is not None:
            parent = self._store.outbox_message(message.thread_of)
            if parent is not None and parent.status == "pending":
                self._retry(message, "waiting for the message it refers to", soon=True)
                return "waiting"
            resolved = parent.result_ts if parent is not None and parent.status == "sent" else None
            if resolved is not None and parent is not None and parent.result_channel:
                params["channel"] = parent.result_channel  # the ID Slack answered with, not a #name
            if message.method == "update":
                if resolved is None:
                    self._give_up(message, "the message to edit was never posted")
                    return "dead"
                params["ts"] = resolved
            elif resolved is not None:
                params["thread_ts"] = resolved
        if message.method == "post":
            params["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"key": message.key}}
            if message.in_flight:
                found = self._already_posted(message, params)
                if found is not None:
                    self._sent(message, *found)
                    return "sent"
            message = self._store.save_outbox(message.model_copy(update={"in_flight": True}))
        if message.method == "respond" and self._clock.now() - message.created_at > RESPONSE_URL_LIFETIME:
            self._give_up(message, "the response_url expired (Slack keeps them 30 minutes)")
            return "dead"
        try:
            channel, ts = self._send(message.method, params)
        except _ResponseUrlError as exc:
            if exc.status in (404, 410) or (400 <= exc.status < 500 and exc.status != 429):
                self._give_up(message, f"response_url answered {exc.status}: {exc.body[:100]}")
                return "dead"
            self._retry(message, f"response_url answered {exc.status}")
            return "waiting"
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            status = exc.response.status_code
            if error in PERMANENT_ERRORS and status < 500:
                self._give_up(message, error)
                return "dead"
            self._retry(message, f"{status} {error}".strip())
            return "waiting"
        except (SlackClientError, OSError) as exc:
            self._retry(message, str(exc) or type(exc).__name__)
            return "waiting"
        self._sent(message, channel, ts)
        return "sent"

    def _publish(self, message: OutboxMessage) -> Literal["sent", "dead", "waiting"]:
        """An alert fan-out row: one SNS Publish. A topic SNS says is gone ends the row; anything else retries."""
        assert self._topics is not None  # _deliver_leased checked
        params = message.params
        try:
            message_id = self._topics.publish(
                str(params["topic_arn"]),
                subject=str(params["subject"]),
                message=str(params["message"]),
                dedup_id=dedup_id(message.key),
            )
        except TopicGone as exc:
            self._give_up(message, str(exc))
            return "dead"
        except AwsFailure as exc:
            self._retry(message, str(exc))
            return "waiting"
        except Exception as exc:  # a client that failed in a way the adapter did not wrap: still retried
            log.exception("SNS message %s: unexpected failure", message.key)
            self._retry(message, f"{type(exc).__name__}: {exc}")
            return "waiting"
        log.info(
            "SNS message %s published to %s (MessageId %s)", message.key, params["topic_arn"], message_id
        )
        self._sent(message, str(params["topic_arn"]), None)
        return "sent"

    def _sent(self, message: OutboxMessage, channel: str | None, ts: str | None) -> None:
        self._store.save_outbox(
            message.model_copy(
                update={
                    "status": "sent",
                    "in_flight": False,
                    "attempts": message.attempts + 1,
                    "sent_at": self._clock.now(),
                    "result_channel": channel,
                    "result_ts": ts,
                    "last_error": None,
                }
            )
        )
        if message.thread_for_deployment and channel and ts:
            self._remember_thread(message.thread_for_deployment, channel, ts)

    def _already_posted(self, message: OutboxMessage, params: dict[str, Any]) -> tuple[str, str] | None:
        """The channel and ts of this row's message if an attempt cut short by a crash did post it.

        Found by the key in the message's metadata, among the newest messages of its thread (or channel).
        Reading history needs channels:history; where Slack will not say, the row is posted again (at least
        once rather than never).
        """
        channel = str(params["channel"])
        try:
            # The newest 200 of the thread (or channel): a post cut short by a crash is among the latest.
            if params.get("thread_ts"):
                answer = self._client.conversations_replies(
                    channel=channel, ts=str(params["thread_ts"]), include_all_metadata=True, limit=200
                )
            else:
                answer = self._client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=200
                )
        except (SlackClientError, OSError) as exc:
            log.warning("could not check whether %s was already posted: %s; posting it", message.key, exc)
            return None
        for found in answer.get("messages") or []:
            payload = (found.get("metadata") or {}).get("event_payload") or {}
            if payload.get("key") == message.key:
                return str(answer.get("channel") or channel), str(found["ts"])
        return None

    def _send(self, method: str, params: dict[str, Any]) -> tuple[str | None, str | None]:
        if method == "post":
            response = self._client.chat_postMessage(**params)
            return str(response["channel"]), str(response["ts"])
        if method == "update":
            response = self._client.chat_update(**params)
            return str(response.get("channel") or params["channel"]), str(response.get("ts") or params["ts"])
        if method == "respond":
            url = params.pop("url")
            status, answer_text = self._responses.post(url, params)
            if status >= 300:
                raise _ResponseUrlError(status, answer_text)
            return None, None
        if method == "upload":
            body = base64.b64decode(params.pop("file_b64"))
            self._client.files_upload_v2(file=body, **params)
            return params.get("channel"), None
        raise ValueError(f"unknown outbox method {method!r}")

    def _retry(self, message: OutboxMessage, error: str, *, soon: bool = False) -> None:
        attempts = message.attempts + (0 if soon else 1)
        delay = (
            timedelta(seconds=1)
            if soon
            else timedelta(
                seconds=self._rng.uniform(1, min(RETRY_CAP.total_seconds(), 2.0 ** min(attempts, 20)))
            )
        )
        if not soon:
            log.warning("%s %s not delivered (attempt %d): %s", _what(message), message.key, attempts, error)
        self._store.save_outbox(
            message.model_copy(
                update={
                    "attempts": attempts,
                    "next_attempt_at": self._clock.now() + delay,
                    "last_error": error,
                }
            )
        )

    def _give_up(self, message: OutboxMessage, error: str) -> None:
        log.error("%s %s dropped: %s", _what(message), message.key, error)
        self._store.save_outbox(
            message.model_copy(
                update={"status": "dead", "attempts": message.attempts + 1, "last_error": error}
            )
        )

    def _remember_thread(self, deployment_id: str, channel: str, ts: str) -> None:
        self._store.record_thread(deployment_id, channel, ts)


def _what(message: OutboxMessage) -> str:
    return "SNS message" if message.method == "sns_publish" else "Slack message"


class BackgroundDrainer:
    """Drains on its own thread: woken when a row is queued, and every `every` for retries."""

    def __init__(self, drainer: OutboxDrainer, *, every: timedelta = timedelta(seconds=2)) -> None:
        self._drainer = drainer
        self._every = every.total_seconds()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_run: datetime | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="slack-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._every)
            self._wake.clear()
            self.last_run = datetime.now(UTC)
            try:
                self._drainer.drain()
            except Exception:
                log.exception("draining the Slack outbox failed; trying again shortly")


__all__ = [
    "BackgroundDrainer",
    "Outbox",
    "OutboxDrainer",
    "ResponseUrlPoster",
    "Thread",
    "dedup_id",
    "lane_of",
    "parent_key",
    "topic_lane",
]
