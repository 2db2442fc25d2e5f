"""What the bot does with a CloudWatch alarm notification, from either intake (SQS or SNS HTTPS).

ALARM on a live canary → roll back at once through the service (no human in the loop), then alert with the
alarm's fields and the measured time from notification to alias reverted. ALARM with no live canary → alert
only. OK → an informative note. Every notification is handled once (deduplicated on MessageId).
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from bot.actors import BOT
from bot.alarm_event import AlarmNotification, SnsEnvelope, parse_alarm
from bot.events import AlarmAlert
from bot.model import ROUTED_STATES, Deployment
from bot.ports import CanaryError
from bot.service import CanaryService

log = logging.getLogger(__name__)


class AlarmOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    alarm_name: str | None = None
    state: str | None = None
    action: str  # "rolled_back", "rollback_failed", "alerted", "noted", "duplicate", "ignored"
    deployment_id: str | None = None
    seconds_to_revert: float | None = None
    error: str | None = None


class AlarmResponder:
    def __init__(self, service: CanaryService, *, default_channel: str | None = None) -> None:
        self.service = service
        self.default_channel = default_channel

    def handle(self, envelope: SnsEnvelope, *, received_at: datetime | None = None) -> AlarmOutcome:
        """Raises BadNotification for a message that is not a CloudWatch alarm (the intake: poison)."""
        if envelope.Type != "Notification":
            return AlarmOutcome(message_id=envelope.MessageId, action="ignored")
        alarm = parse_alarm(envelope)
        received_at = received_at or self.service.clock.now()
        key = f"sns:{envelope.MessageId}"
        if not self.service.store.claim(key, received_at):
            return AlarmOutcome(message_id=envelope.MessageId, alarm_name=alarm.AlarmName, action="duplicate")
        try:
            return self._respond(envelope.MessageId, alarm, received_at)
        except Exception:
            # Let the intake retry the same message: the claim must not swallow it.
            self.service.store.release(key)
            raise

    def _respond(self, message_id: str, alarm: AlarmNotification, received_at: datetime) -> AlarmOutcome:
        deployment = self._canary_for(alarm)
        policy = self.service.policy.for_function(alarm.function_name) if alarm.function_name else None
        channel = (deployment.channel if deployment else None) or (policy.channel if policy else None)
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
        if not alarm.is_alarm:
            self._publish(AlarmAlert(deployment=deployment, **base))
            return AlarmOutcome(
                action="noted", deployment_id=deployment.id if deployment else None, **outcome
            )
        if deployment is None:
            self._publish(AlarmAlert(deployment=None, **base))
            return AlarmOutcome(action="alerted", **outcome)
        reason = f"alarm {alarm.AlarmName}: {alarm.NewStateReason}".strip()
        try:
            result = self.service.rollback(
                deployment.function,
                deployment.alias,
                BOT,
                reason=reason[:500],
                deployment_id=deployment.id,
                detected_at=received_at,
            )
        except CanaryError as exc:
            log.error("automatic rollback of %s on alarm %s failed: %s", deployment.id, alarm.AlarmName, exc)
            failed = {**base, "reason": f"{alarm.NewStateReason} — automatic rollback FAILED: {exc}"}
            self._publish(AlarmAlert(deployment=deployment, **failed))
            return AlarmOutcome(
                action="rollback_failed", deployment_id=deployment.id, error=str(exc), **outcome
            )
        reverted_at = self.service.clock.now()
        self._publish(
            AlarmAlert(
                deployment=result.deployment,
                rolled_back=True,
                received_at=received_at,
                reverted_at=reverted_at,
                **base,
            )
        )
        return AlarmOutcome(
            action="rolled_back",
            deployment_id=deployment.id,
            seconds_to_revert=(reverted_at - received_at).total_seconds(),
            **outcome,
        )

    def _canary_for(self, alarm: AlarmNotification) -> Deployment | None:
        """The live canary this alarm is about: same function (and alias, when the alarm names one).

        An alarm scoped to the stable version (ExecutedVersion = stable) is not the canary's fault.
        """
        function = alarm.function_name
        if not function or self.service.policy.for_function(function) is None:
            return None
        alias = alarm.alias or self.service.alias_for(function, None)
        deployment = self.service.store.live_for(function, alias)
        if deployment is None or deployment.state not in ROUTED_STATES:
            return None
        if alarm.version is not None and alarm.version != deployment.canary_version:
            return None
        return deployment

    def _publish(self, alert: AlarmAlert) -> None:
        self.service.notify(alert)  # logs and swallows a Slack failure: the rollback already happened
