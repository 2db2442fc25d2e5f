"""SNS over HTTPS (POST /sns in HTTP mode): verify every message, confirm allowed subscriptions, hand
alarm notifications to the responder. Forged, tampered or foreign messages get 403 and a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.alarm_event import BadNotification, parse_sns_body
from bot.alarm_responder import AlarmResponder
from bot.sns_verify import Fetcher, SnsVerificationError, SnsVerifier

log = logging.getLogger(__name__)

PoisonReporter = Callable[[str, str], None]


class SnsHttpIntake:
    def __init__(
        self,
        verifier: SnsVerifier,
        responder: AlarmResponder,
        *,
        on_poison: PoisonReporter | None = None,
        opener: Fetcher | None = None,
    ) -> None:
        self._verifier = verifier
        self._responder = responder
        self._on_poison = on_poison
        self._opener = opener

    def __call__(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        try:
            envelope = parse_sns_body(body)
        except BadNotification as exc:
            log.warning("refused a body on /sns that is not an SNS message: %s", exc)
            return 400, f"not an SNS message: {exc}"
        try:
            self._verifier.verify(envelope)
        except SnsVerificationError as exc:
            log.warning(
                "refused SNS message %s from %s: %s", envelope.MessageId, envelope.TopicArn, exc.reason
            )
            return 403, "signature verification failed"
        if envelope.Type == "SubscriptionConfirmation":
            try:
                arn = self._verifier.confirm_subscription(envelope, self._opener)
            except (SnsVerificationError, OSError) as exc:
                log.warning("did not confirm the subscription to %s: %s", envelope.TopicArn, exc)
                return 403, "subscription not confirmed"
            log.info("confirmed the SNS subscription to %s (%s)", envelope.TopicArn, arn)
            return 200, "subscription confirmed"
        if envelope.Type != "Notification":
            return 200, "ignored"
        try:
            outcome = self._responder.handle(envelope)
        except BadNotification as exc:
            # Authentic but not an alarm: report once; a 200 stops SNS retrying it forever.
            if self._on_poison is not None:
                self._on_poison(envelope.MessageId, str(exc))
            return 200, "not a CloudWatch alarm; reported"
        return 200, outcome.action
