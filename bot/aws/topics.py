"""TopicPublisher on SNS: one Publish per message, with a client that gives up within seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.ports import AwsFailure

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# A notification is not worth holding up the rollback story: two tries, short timeouts.
FANOUT_CONFIG: Final = Config(
    retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=2, read_timeout=5
)


class SnsTopics:
    def __init__(self, sns: SNSClient) -> None:
        self._sns = sns

    def publish(self, topic_arn: str, *, subject: str, message: str) -> str:
        try:
            answer = self._sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)
        except (ClientError, BotoCoreError) as exc:
            raise AwsFailure(f"SNS Publish to {topic_arn} failed: {exc}") from exc
        return str(answer["MessageId"])
