"""In-memory TopicPublisher: keeps every message; can be told to fail (for a while, or for good)."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from bot.ports import AwsFailure, TopicGone


@dataclass(frozen=True)
class PublishedMessage:
    topic_arn: str
    subject: str
    message: str
    message_id: str
    dedup_id: str | None = None


@dataclass
class FakeTopics:
    messages: list[PublishedMessage] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # topics whose Publish fails (throttled: retried)
    missing: set[str] = field(default_factory=set)  # topics that do not exist (never retried)
    _ids: itertools.count[int] = field(default_factory=itertools.count, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self, topic_arn: str, *, subject: str, message: str, dedup_id: str | None = None) -> str:
        if topic_arn in self.missing:
            raise TopicGone(f"SNS Publish to {topic_arn} failed: NotFound: Topic does not exist")
        if topic_arn in self.failing:
            raise AwsFailure(f"SNS Publish to {topic_arn} failed: Throttling: Rate exceeded")
        with self._lock:
            message_id = f"fake-{next(self._ids)}"
            self.messages.append(PublishedMessage(topic_arn, subject, message, message_id, dedup_id))
        return message_id
