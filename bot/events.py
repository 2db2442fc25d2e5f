"""What the service tells the outside world. A Notifier (Slack, terminal, log) renders these."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bot.model import AliasState, Deployment, PeriodFigures


class MessageRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: str
    ts: str


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    deployment: Deployment
    at: datetime
    actor: str  # Actor.label
    actor_mention: str = ""
    # Idempotency key of the message that tells this event: the same key is delivered once (the outbox).
    key: str | None = None


class Started(Event):
    kind: Literal["started"] = "started"
    alias_before: AliasState
    alias_after: AliasState


class TrafficChanged(Event):
    """Promoted, rolled back, weight changed or stepped up."""

    kind: Literal["traffic_changed"] = "traffic_changed"
    action: Literal["promoted", "rolled_back", "weight", "next_step", "reverted", "fallback"]
    alias_before: AliasState | None = None
    alias_after: AliasState
    reason: str | None = None
    automatic: bool = False
    detected_at: datetime | None = None  # when the breach/alarm was seen, for "seen → reverted" timing
    reverted_at: datetime | None = None  # when UpdateAlias answered (the alias was back on stable)
    figures: list[PeriodFigures] = Field(default_factory=list)  # the soak, for the post-deployment summary


class StateNoted(Event):
    """Held, resumed, extended, cancelled, drift detected."""

    kind: Literal["state_noted"] = "state_noted"
    what: Literal["held", "resumed", "extended", "cancelled", "drift", "warning", "stuck", "metrics"]
    reason: str | None = None


class SoakReport(Event):
    kind: Literal["soak_report"] = "soak_report"
    number: int
    total: int
    figures: list[PeriodFigures]  # every period of the current step so far, oldest first
    verdicts: list[Any]  # bot.judge.PeriodVerdict (kept Any so events stay free of the judge)
    chart_png: bytes | None = None


class DecisionNeeded(Event):
    """Soak passed (approval wanted), inconclusive, breach alert, or approval time-out."""

    kind: Literal["decision_needed"] = "decision_needed"
    why: Literal["approval", "inconclusive", "breach_alert", "approval_timeout"]
    reason: str
    approvers: tuple[str, ...] = ()
    deadline: datetime | None = None


class WatchCheckIn(Event):
    """The promoted version, some hours into the watch after promotion (every 6 h until the post-mortem)."""

    kind: Literal["watch_check_in"] = "watch_check_in"
    number: int
    total: int  # check-ins in the whole watch; the post-mortem comes after the last
    figures: list[PeriodFigures]  # the watch's periods so far, oldest first


class WatchAlert(Event):
    """The promoted version breached its thresholds during the watch. Nothing was changed: people decide."""

    kind: Literal["watch_alert"] = "watch_alert"
    reason: str
    approvers: tuple[str, ...] = ()
    alias: AliasState | None = None  # as read when the breach was seen


class PostMortem(Event):
    """The watch is over: the alias as read now and the figures of the soak and of the watch."""

    kind: Literal["post_mortem"] = "post_mortem"
    alias: AliasState | None
    alias_error: str | None = None
    soak_figures: list[PeriodFigures] = Field(default_factory=list)
    watch_figures: list[PeriodFigures] = Field(default_factory=list)


class AlarmAlert(BaseModel):
    """A CloudWatch alarm notification, with what the bot did about it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["alarm"] = "alarm"
    at: datetime
    alarm_name: str
    state: str
    reason: str
    function: str | None
    deployment: Deployment | None  # the live canary it concerned, if any
    rolled_back: bool = False
    received_at: datetime | None = None
    reverted_at: datetime | None = None
    channel: str | None = None
    approvers: tuple[str, ...] = ()
    # Another alarm about a canary already rolled back: told in its thread, no broadcast, no mentions.
    follow_up: bool = False
    key: str | None = None  # see Event.key


AnyEvent = (
    Started
    | TrafficChanged
    | StateNoted
    | SoakReport
    | DecisionNeeded
    | AlarmAlert
    | WatchCheckIn
    | WatchAlert
    | PostMortem
)


class Notifier(Protocol):
    def publish(self, event: AnyEvent) -> MessageRef | None:
        """Deliver; for Started return the parent message (the deployment's thread)."""
        ...


class NullNotifier:
    def publish(self, event: AnyEvent) -> MessageRef | None:
        return None


class RecordingNotifier:
    """Keeps every event: used by tests and by the CLI to print what happened."""

    def __init__(self) -> None:
        self.events: list[AnyEvent] = []

    def publish(self, event: AnyEvent) -> MessageRef | None:
        self.events.append(event)
        return None
