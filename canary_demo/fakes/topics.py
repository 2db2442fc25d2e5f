"""In-memory TopicPublisher: keeps every message; can be told to fail."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from bot.ports import AwsFailure


@dataclass(frozen=True)
class PublishedMessage:
    topic_arn: str
    subject: str
    message: str
    message_id: str


@dataclass
class FakeTopics:
    messages: list[PublishedMessage] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # topics whose Publish fails
    _ids: itertools.count[int] = field(default_factory=itertools.count, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self, topic_arn: str, *, subject: str, message: str) -> str:
        if topic_arn in self.failing:
            raise AwsFailure(f"SNS Publish to {topic_arn} failed: NotFound: Topic does not exist")
        with self._lock:
            message_id = f"fake-{next(self._ids)}"
            self.messages.append(PublishedMessage(topic_arn, subject, message, message_id))
        return message_id
