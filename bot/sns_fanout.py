"""Alert fan-out: the alarm alert and the rollback message also go to each function's `notify_topics` (SNS).

A Notifier decorator around the Slack notifier (composed in bot.composition, and in the serverless responder):
the inner notifier is told first, then one `sns_publish` row per topic the function's policy lists is queued in
the outbox (bot.outbox). Durable: the outbox's drainer publishes it, retries a failed Publish with backoff,
and delivers after a restart what was queued before it; the serverless responder's rows are published by a
replica's drainer. Nothing is sent on the caller's thread, so a publish never blocks or delays a rollback (a
failure to queue is logged and swallowed).

Each (event, topic) is queued once: the row's key is `sns:<event key>:<topic>`, so a redelivered alarm or an
announcement repeated after a crash finds the row already there. Delivery is at least once: a crash between
SNS's answer and the record publishes that message again on a standard topic (FIFO topics drop the repeat, by
the MessageDeduplicationId the drainer derives from the key).
"""

from __future__ import annotations

import logging
from typing import Final

from bot.actors import BOT
from bot.comms import fallback_internal_message, internal_message, status_page_text
from bot.config import Policy
from bot.events import AlarmAlert, AnyEvent, MessageRef, Notifier, TrafficChanged
from bot.outbox import Outbox

log = logging.getLogger(__name__)

SUBJECT_MAX: Final = 99  # SNS: "less than 100 characters", no line breaks


class SnsMessage:
    __slots__ = ("message", "subject")

    def __init__(self, subject: str, message: str) -> None:
        self.subject = " ".join(subject.split())[:SUBJECT_MAX]
        self.message = message

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"SnsMessage({self.subject!r})"


def fan_out_message(event: AnyEvent, policy: Policy) -> tuple[str, SnsMessage] | None:
    """(function, message) for the events the topics get: a canary alarm in ALARM (not a follow-up about a
    rollback already told) and a rollback. Pure."""
    if isinstance(event, AlarmAlert):
        return _alarm(event)
    if isinstance(event, TrafficChanged) and event.action in ("rolled_back", "reverted", "fallback"):
        return _rollback(event, policy)
    return None


def _alarm(event: AlarmAlert) -> tuple[str, SnsMessage] | None:
    function = event.function or (event.deployment.function if event.deployment else None)
    if function is None or event.state.upper() != "ALARM" or event.follow_up:
        return None
    d = event.deployment
    if event.rolled_back and d is not None:
        action = f"canary-bot rolled {d.key} back to v{d.stable_version}"
    elif d is not None:
        action = f"canary v{d.canary_version} of {d.key} is {d.state.value.replace('_', ' ')}"
    else:
        action = "no live canary: nothing was changed"
    lines = [
        "🚨 Canary Deployment Alert",
        f"Alarm: {event.alarm_name}",
        f"Status: {event.state.upper()}",
        f"Reason: {event.reason}",
        f"Function: {function}",
        f"Action: {action}",
        f"At: {event.at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    return function, SnsMessage(f"ALARM: {event.alarm_name}", "\n".join(lines))


def _rollback(event: TrafficChanged, policy: Policy) -> tuple[str, SnsMessage]:
    d = event.deployment
    found = policy.for_function(d.function)
    service = found.service_name if found is not None else None
    reason = event.reason or d.reason or "no reason given"
    automatic = event.automatic or event.actor == BOT.label
    if event.action == "fallback":
        internal = fallback_internal_message(d, reason=reason, service_name=service)
    else:
        internal = internal_message(d, reason=reason, service_name=service, now=event.at, automatic=automatic)
    public = status_page_text(d, reason=reason, service_name=service, now=event.at, automatic=automatic)
    body = f"{internal}\n\nStatus page:\n{public}"
    what = {"reverted": "promotion reverted", "fallback": "emergency fallback"}.get(
        event.action, "canary rolled back"
    )
    return d.function, SnsMessage(f"ROLLBACK: {service or d.function} {what}", body)


class SnsFanout:
    """Notifier: `inner` first, then one outbox row per notify_topic for alarm alerts and rollbacks."""

    def __init__(self, inner: Notifier, outbox: Outbox, policy: Policy) -> None:
        self._inner = inner
        self._outbox = outbox
        self._policy = policy

    def publish(self, event: AnyEvent) -> MessageRef | None:
        try:
            return self._inner.publish(event)
        finally:
            self._fan_out(event)

    def _fan_out(self, event: AnyEvent) -> None:
        try:
            found = fan_out_message(event, self._policy)
            if found is None:
                return
            function, message = found
            policy = self._policy.for_function(function)
            topics = policy.notify_topics if policy is not None else ()
        except Exception:
            log.exception("alert fan-out: could not build the message for %s", event.kind)
            return
        told = event_key(event, function)
        for topic in topics:
            try:
                self._outbox.publish_to_topic(
                    topic_arn=topic,
                    subject=message.subject,
                    message=message.message,
                    key=f"sns:{told}:{topic}",
                )
            except Exception:
                log.exception("alert fan-out: queueing %s for %s failed", event.kind, topic)


def event_key(event: AnyEvent, function: str) -> str:
    """The event's idempotency key; an event without one is named by what it is about and when."""
    if event.key is not None:
        return event.key
    about = event.deployment.id if event.deployment is not None else function
    return f"{event.kind}:{about}:{event.at.isoformat()}"


def wants_fanout(policy: Policy) -> bool:
    """True when any function lists notify_topics (only then is an SNS client made)."""
    for name in policy.function_names():
        found = policy.for_function(name)
        if found is not None and found.notify_topics:
            return True
    return False
