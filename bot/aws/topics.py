"""TopicPublisher on SNS: one Publish per message, with a client that gives up within seconds.

The outbox's drainer calls it (bot.outbox): a failed Publish is retried there, with backoff, so the client
itself tries twice only and never holds a lane for long. A FIFO topic (name ending in `.fifo`) gets the row's
MessageDeduplicationId and one MessageGroupId, so a publish repeated after a crash is dropped by SNS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.ports import AwsFailure, TopicGone

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# A notification is not worth holding up a lane of the outbox: two tries, short timeouts (the outbox retries).
FANOUT_CONFIG: Final = Config(
    retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=2, read_timeout=5
)
# SNS answers no retry can change: the topic is gone, or the message itself is invalid.
PERMANENT_CODES: Final = frozenset(
    {
        "NotFound",
        "NotFoundException",
        "InvalidParameter",
        "InvalidParameterValue",
        "InvalidParameterException",
    }
)
FIFO_GROUP: Final = "canary-bot"


class SnsTopics:
    def __init__(self, sns: SNSClient) -> None:
        self._sns = sns

    def publish(self, topic_arn: str, *, subject: str, message: str, dedup_id: str | None = None) -> str:
        kwargs: dict[str, Any] = {"TopicArn": topic_arn, "Subject": subject, "Message": message}
        if topic_arn.endswith(".fifo"):
            kwargs["MessageGroupId"] = FIFO_GROUP
            if dedup_id is not None:
                kwargs["MessageDeduplicationId"] = dedup_id
        try:
            answer = self._sns.publish(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            failure = TopicGone if code in PERMANENT_CODES else AwsFailure
            raise failure(f"SNS Publish to {topic_arn} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise AwsFailure(f"SNS Publish to {topic_arn} failed: {exc}") from exc
        return str(answer["MessageId"])
