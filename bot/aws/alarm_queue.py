"""Alarm intake from SQS: CloudWatch alarm -> SNS topic -> SQS queue (standard delivery) -> handler.

The SNS signature is NOT verified on this path. SNS's signature protects HTTP delivery, where anyone can
post to our endpoint; a queue only accepts what its queue policy (and IAM) lets in, which should be this
SNS topic alone. Keep that policy tight: it is the authentication here.

A message the handler fails on stays on the queue and comes back after the visibility timeout. A message
that can never succeed (not JSON, not an SNS envelope, not an alarm, or received too often) is "poison":
it is reported once through on_poison and deleted, so it never blocks the messages behind it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from bot.alarm_event import BadNotification, SnsEnvelope, parse_alarm, parse_sns_body
from bot.ports import AwsFailure

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

SNIPPET_CHARS = 200
RECEIVE_ERROR_BACKOFF_SECONDS = 5.0


class AlarmQueue:
    """Long-polls one SQS queue and hands each alarm envelope to `handler`.

    handler(envelope): parse_alarm(envelope) is guaranteed to succeed for it; what it returns is ignored,
    and raising leaves the message for a retry. It must be idempotent (dedupe on envelope.MessageId): SQS
    delivers at least once, and a failed delete redelivers a handled message.
    on_poison(message_id, reason): called once per poison message, just before it is deleted; reason ends
    with the start of the body.
    """

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        handler: Callable[[SnsEnvelope], object],
        on_poison: Callable[[str, str], None],
        *,
        wait_seconds: int = 20,
        max_messages: int = 10,
        visibility_timeout: int = 60,
        max_receive_count: int = 5,
    ) -> None:
        if not 0 <= wait_seconds <= 20:
            raise ValueError("wait_seconds must be 0..20 (SQS long polling limit)")
        if not 1 <= max_messages <= 10:
            raise ValueError("max_messages must be 1..10")
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._on_poison = on_poison
        self._wait_seconds = wait_seconds
        self._max_messages = max_messages
        self._visibility_timeout = visibility_timeout
        self._max_receive_count = max_receive_count

    def poll_once(self) -> int:
        """One ReceiveMessage (long poll) and the handling of what it returned. Returns how many arrived."""
        try:
            answer = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=self._max_messages,
                WaitTimeSeconds=self._wait_seconds,
                VisibilityTimeout=self._visibility_timeout,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise AwsFailure(f"SQS ReceiveMessage on {self._queue_url} failed: {exc}") from exc
        messages = answer.get("Messages", [])
        for message in messages:
            self._process(message)
        return len(messages)

    def run_forever(self, stop: threading.Event) -> None:
        """poll_once until `stop` is set (noticed within one long poll); receive errors back off and retry."""
        while not stop.is_set():
            try:
                self.poll_once()
            except AwsFailure:
                log.exception("alarm queue receive failed; retrying in %s s", RECEIVE_ERROR_BACKOFF_SECONDS)
                stop.wait(RECEIVE_ERROR_BACKOFF_SECONDS)

    # ------------------------------------------------------------ one message
    def _process(self, message: MessageTypeDef) -> None:
        message_id = str(message.get("MessageId", "?"))
        body = str(message.get("Body", ""))
        receive_count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        if receive_count > self._max_receive_count:
            self._poison(message, f"received {receive_count} times and never handled", body)
            return
        try:
            envelope = parse_sns_body(body)
            parse_alarm(envelope)  # a message that is not an alarm would fail the handler forever
        except BadNotification as exc:
            self._poison(message, str(exc), body)
            return
        try:
            self._handler(envelope)
        except Exception:
            # Left on the queue: visible again after the visibility timeout, then retried.
            log.exception(
                "alarm handler failed on SQS message %s (SNS %s, receive %d of %d)",
                message_id,
                envelope.MessageId,
                receive_count,
                self._max_receive_count,
            )
            return
        self._delete(message)

    def _poison(self, message: MessageTypeDef, reason: str, body: str) -> None:
        message_id = str(message.get("MessageId", "?"))
        snippet = body[:SNIPPET_CHARS] + ("…" if len(body) > SNIPPET_CHARS else "")
        try:
            self._on_poison(message_id, f"{reason}; body starts: {snippet!r}")
        except Exception:
            # Still delete: a poison message kept on the queue would be reported again and again.
            log.exception("on_poison failed for SQS message %s", message_id)
        self._delete(message)

    def _delete(self, message: MessageTypeDef) -> None:
        try:
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        except (ClientError, BotoCoreError):
            # It will come back; the second delivery finds the intent or the finished rollback: harmless.
            log.exception("could not delete SQS message %s", message.get("MessageId"))
