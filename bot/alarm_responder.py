"""What the bot does with a CloudWatch alarm notification, from either intake (SQS or SNS HTTPS).

ALARM on a live canary → a durable rollback intent at once (no human in the loop), driven right away, then one
alert per canary with the alarm's fields and the measured time from notification to alias reverted. ALARM with
no live canary → alert only (a quiet note in the thread of a canary rolled back within the hour). OK → an
informative note. Redelivered messages act and tell nothing twice (the intent and the message keys decide).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from bot.alarm_event import AlarmNotification, SnsEnvelope, parse_alarm
from bot.events import AlarmAlert
from bot.model import ROUTED_STATES, Deployment, State
from bot.ports import Clock, StorePort
from bot.usecases.announcer import Announcer
from bot.usecases.automatic import Automatic
from bot.usecases.lookup import Lookup

log = logging.getLogger(__name__)

# A second alarm this long after its canary was rolled back is told quietly in the canary's thread.
RECENT = timedelta(hours=1)


class AlarmOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    alarm_name: str | None = None
    state: str | None = None
    # "rolled_back", "rollback_pending", "rollback_stopped", "rollback_joined", "alerted", "noted", "ignored"
    action: str
    deployment_id: str | None = None
    seconds_to_revert: float | None = None
    error: str | None = None


class AlarmResponder:
    def __init__(
        self,
        *,
        automatic: Automatic,
        lookup: Lookup,
        announcer: Announcer,
        store: StorePort,
        clock: Clock,
        default_channel: str | None = None,
    ) -> None:
        self._automatic = automatic
        self._lookup = lookup
        self._announcer = announcer
        self._store = store
        self._clock = clock
        self.default_channel = default_channel

    def handle(self, envelope: SnsEnvelope, *, received_at: datetime | None = None) -> AlarmOutcome:
        """Raises BadNotification for a message that is not a CloudWatch alarm (the intake: poison).

        Returns once what the alarm calls for is durable (the rollback intent is in the store), so the intake
        may acknowledge the message; an exception means it was not, and the message must come back. Nothing is
        claimed before that point: a crash anywhere leaves the message to be delivered again, and the second
        delivery finds the intent (or the finished rollback) instead of doing anything twice.
        """
        if envelope.Type != "Notification":
            return AlarmOutcome(message_id=envelope.MessageId, action="ignored")
        alarm = parse_alarm(envelope)
        received_at = received_at or self._clock.now()
        return self._respond(envelope.MessageId, alarm, received_at)

    def _respond(self, message_id: str, alarm: AlarmNotification, received_at: datetime) -> AlarmOutcome:
        deployment = self._canary_for(alarm)
        policy = self._lookup.policy.for_function(alarm.function_name) if alarm.function_name else None
        recent = None if deployment is not None else self._recently_ended(alarm)
        about = deployment or recent
        channel = (about.channel if about else None) or (policy.channel if policy else None)
        base = {
            "at": received_at,
            "alarm_name": alarm.AlarmName,
            "state": alarm.NewStateValue,
            "reason": alarm.NewStateReason,
            "function": alarm.function_name,
            "channel": channel or self.default_channel,
            "approvers": policy.approvers if policy else (),
        }
        outcome = {"message_id": message_id, "alarm_name": alarm.AlarmName, "state": alarm.NewStateValue}
        # A redelivered message (or the same alarm again) tells nothing twice.
        once = f"alarm:{about.id}:{alarm.AlarmName}:{alarm.NewStateValue}" if about else f"alarm:{message_id}"
        if not alarm.is_alarm:
            self._publish(AlarmAlert(deployment=about, key=once, **base))
            return AlarmOutcome(action="noted", deployment_id=about.id if about else None, **outcome)
        if deployment is None:
            # A canary this alarm already rolled back (a second alarm, a redelivery): a quiet note in its thread.
            self._publish(AlarmAlert(deployment=recent, follow_up=recent is not None, key=once, **base))
            return AlarmOutcome(action="alerted", deployment_id=recent.id if recent else None, **outcome)
        reason = f"alarm {alarm.AlarmName}: {alarm.NewStateReason}".strip()[:500]
        result = self._automatic.roll_back_for_alarm(
            deployment, alarm=alarm.AlarmName, reason=reason, received_at=received_at
        )
        story = f"alarm-rollback:{deployment.id}"  # one alert per canary, however many alarms fire
        if result is not None and result.status == "done":
            # When UpdateAlias answered, as the rollback message says: one event, one figure.
            reverted_at = result.intent.done_at or self._clock.now()
            self._store.claim(f"msg:{once}", reverted_at)  # the story tells this alarm
            self._publish(
                AlarmAlert(
                    deployment=result.deployment,
                    rolled_back=True,
                    received_at=received_at,
                    reverted_at=reverted_at,
                    key=story,
                    **base,
                )
            )
            return AlarmOutcome(
                action="rolled_back",
                deployment_id=deployment.id,
                seconds_to_revert=(reverted_at - received_at).total_seconds(),
                **outcome,
            )
        if result is None or result.status in ("busy", "closed"):
            # Another worker (a replica, the reconciler) holds this rollback and tells its story: this alarm is
            # a quiet note in the thread, never a second story.
            current = self._store.get(deployment.id) or deployment
            self._publish(AlarmAlert(deployment=current, follow_up=True, key=once, **base))
            return AlarmOutcome(action="rollback_joined", deployment_id=deployment.id, **outcome)
        error = result.error or "not applied yet"
        stopped = result.status == "drift"
        if stopped:
            note = f"{alarm.NewStateReason} — automatic rollback stopped: {error}"
        else:
            note = f"{alarm.NewStateReason} — automatic rollback under way ({error}); canary-bot keeps trying"
        log.warning("alarm rollback of %s not finished: %s", deployment.id, error)
        # Its own key: the story of the finished rollback is told by the reconciler's announcement.
        self._publish(
            AlarmAlert(deployment=deployment, key=f"{story}:{result.status}", **{**base, "reason": note})
        )
        action = "rollback_stopped" if stopped else "rollback_pending"
        return AlarmOutcome(action=action, deployment_id=deployment.id, error=error, **outcome)

    def _recently_ended(self, alarm: AlarmNotification) -> Deployment | None:
        """The canary of this function:alias that ended (rolled back) in the last hour, if any."""
        function = alarm.function_name
        if not function or self._lookup.policy.for_function(function) is None:
            return None
        alias = alarm.alias or self._lookup.alias_for(function, None)
        latest = self._store.history(function, alias, 1)
        if not latest or latest[0].state is not State.ROLLED_BACK or latest[0].ended_at is None:
            return None
        if self._clock.now() - latest[0].ended_at > RECENT:
            return None
        return latest[0]

    def _canary_for(self, alarm: AlarmNotification) -> Deployment | None:
        """The live canary this alarm is about: same function (and alias, when the alarm names one).

        An alarm scoped to the stable version (ExecutedVersion = stable) is not the canary's fault.
        """
        function = alarm.function_name
        if not function or self._lookup.policy.for_function(function) is None:
            return None
        alias = alarm.alias or self._lookup.alias_for(function, None)
        deployment = self._store.live_for(function, alias)
        if deployment is None or deployment.state not in ROUTED_STATES:
            return None
        if alarm.version is not None and alarm.version != deployment.canary_version:
            return None
        return deployment

    def _publish(self, alert: AlarmAlert) -> None:
        self._announcer.announce(alert)  # logs and swallows a Slack failure: the rollback already happened
