"""What the outbox holds: one row per Slack message (or SNS alert, `sns_publish`) the bot wants delivered. Pure
data.

A message is sent in order within its lane (one lane per deployment thread, or per channel), so a reply never
overtakes the post it replies to and an update never overtakes the post it edits. `thread_of` names the
message (by key) whose `ts` becomes this one's `thread_ts` (replies, uploads) or `ts` (updates).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OutboxMethod = Literal["post", "update", "upload", "ephemeral", "respond", "sns_publish"]
OutboxStatus = Literal["pending", "sent", "dead"]


class OutboxMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int | None = None  # given by the store; the order of delivery within a lane
    key: str  # idempotency: a key is enqueued once, so an event told twice is delivered once
    lane: str
    method: OutboxMethod
    params: dict[str, Any] = Field(default_factory=dict)
    thread_of: str | None = None
    # After a successful post: remember its ts as the thread of this deployment (the parent message).
    thread_for_deployment: str | None = None
    status: OutboxStatus = "pending"
    # Set just before the Slack call and cleared with its answer: still set after a restart means the outcome
    # is unknown (Slack may have posted it), so the drainer looks for the message before posting again.
    in_flight: bool = False
    attempts: int = 0
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None
    sent_at: datetime | None = None
    result_channel: str | None = None
    result_ts: str | None = None


__all__ = ["OutboxMessage", "OutboxMethod", "OutboxStatus"]
