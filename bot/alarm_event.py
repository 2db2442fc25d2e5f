"""Alarm notifications as they arrive: the SNS envelope, and the CloudWatch alarm JSON inside its Message.

The same envelope reaches us by HTTPS (SNS posts it) and through SQS (a standard, not raw, subscription puts
the envelope JSON in the message body), so both intake paths parse with `parse_sns_body`.

Field names keep AWS's spelling: the envelope's string values are signed exactly as sent, so they are kept
as strings, never normalised.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

EnvelopeType = Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]


class BadNotification(ValueError):
    """A body that is not an SNS envelope, or a message that is not a CloudWatch alarm; str() says why."""


class SnsEnvelope(BaseModel):
    """The JSON document SNS delivers. Unknown keys (MessageAttributes, ...) are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    Type: EnvelopeType
    MessageId: str
    TopicArn: str
    Subject: str | None = None
    Message: str
    Timestamp: str  # kept verbatim: it is part of the signed string
    SignatureVersion: str
    Signature: str
    SigningCertURL: str
    SubscribeURL: str | None = None
    Token: str | None = None
    UnsubscribeURL: str | None = None


class Dimension(BaseModel):
    """Alarm notifications spell dimensions {"name", "value"}; the API spells them Name/Value."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(validation_alias=AliasChoices("name", "Name"))
    value: str = Field(validation_alias=AliasChoices("value", "Value"))


class AlarmMetric(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    MetricName: str | None = None
    Namespace: str | None = None
    Dimensions: list[Dimension] = Field(default_factory=list)


class AlarmMetricStat(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    Metric: AlarmMetric
    Period: int | None = None
    Stat: str | None = None
    Unit: str | None = None


class AlarmMetricQuery(BaseModel):
    """One entry of Trigger.Metrics (metric math alarms): a metric, or an expression over the others."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    Id: str
    Expression: str | None = None
    Label: str | None = None
    ReturnData: bool | None = None
    MetricStat: AlarmMetricStat | None = None


class AlarmTrigger(BaseModel):
    """What the alarm watches: a single metric (MetricName + Dimensions) or metric math (Metrics)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    MetricName: str | None = None
    Namespace: str | None = None
    StatisticType: str | None = None
    Statistic: str | None = None
    ExtendedStatistic: str | None = None
    Unit: str | None = None
    Dimensions: list[Dimension] = Field(default_factory=list)
    Metrics: list[AlarmMetricQuery] = Field(default_factory=list)
    Period: int | None = None
    EvaluationPeriods: int | None = None
    DatapointsToAlarm: int | None = None
    ComparisonOperator: str | None = None
    Threshold: float | None = None
    TreatMissingData: str | None = None

    def all_dimensions(self) -> list[Dimension]:
        """The trigger's own dimensions, then those of each metric in Metrics, in order."""
        found = list(self.Dimensions)
        for query in self.Metrics:
            if query.MetricStat is not None:
                found.extend(query.MetricStat.Metric.Dimensions)
        return found


AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


class AlarmNotification(BaseModel):
    """The CloudWatch alarm state change carried in an SNS Message."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    AlarmName: str
    AlarmDescription: str | None = None
    AWSAccountId: str | None = None
    AlarmArn: str | None = None
    NewStateValue: AlarmState
    NewStateReason: str = ""
    StateChangeTime: datetime
    OldStateValue: AlarmState | None = None
    Region: str | None = None  # a display name ("US East (N. Virginia)"), not a region code
    Trigger: AlarmTrigger

    @property
    def is_alarm(self) -> bool:
        return self.NewStateValue == "ALARM"

    def _dimension(self, name: str) -> str | None:
        return next((d.value for d in self.Trigger.all_dimensions() if d.name == name), None)

    @property
    def function_name(self) -> str | None:
        """FunctionName dimension, else the function part of Resource ("fn:alias")."""
        named = self._dimension("FunctionName")
        if named:
            return named
        resource = self._dimension("Resource")
        return resource.split(":", 1)[0] if resource else None

    @property
    def alias(self) -> str | None:
        """The qualifier of the Resource dimension ("fn:alias" -> "alias"); None when unqualified."""
        resource = self._dimension("Resource")
        if not resource or ":" not in resource:
            return None
        return resource.split(":", 1)[1] or None

    @property
    def version(self) -> str | None:
        """The ExecutedVersion dimension: which version behind the alias the alarm watches."""
        return self._dimension("ExecutedVersion")


def parse_sns_body(raw: str | bytes) -> SnsEnvelope:
    """An SNS envelope from an HTTP body or an SQS message body. Raises BadNotification."""
    document = _json_object(raw, what="body")
    if "Type" not in document and "AlarmName" in document:
        # A raw-delivery subscription puts the alarm JSON straight in the body, without the signed envelope.
        raise BadNotification(
            "body is a bare CloudWatch alarm, not an SNS envelope (raw message delivery is on)"
        )
    try:
        return SnsEnvelope.model_validate(document)
    except ValidationError as exc:
        raise BadNotification(f"not an SNS envelope: {_describe(exc)}") from None


def parse_alarm(envelope: SnsEnvelope) -> AlarmNotification:
    """The CloudWatch alarm inside a Notification. Raises BadNotification."""
    if envelope.Type != "Notification":
        raise BadNotification(f"SNS {envelope.Type} carries no alarm")
    document = _json_object(envelope.Message, what="SNS Message")
    try:
        return AlarmNotification.model_validate(document)
    except ValidationError as exc:
        raise BadNotification(f"SNS Message is not a CloudWatch alarm: {_describe(exc)}") from None


def _json_object(raw: str | bytes, *, what: str) -> dict[str, Any]:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadNotification(f"{what} is not UTF-8") from None
    if not raw.strip():
        raise BadNotification(f"{what} is empty")
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadNotification(
            f"{what} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(document, dict):
        raise BadNotification(f"{what} is JSON but not an object (got {type(document).__name__})")
    return document


def _describe(exc: ValidationError) -> str:
    """'missing TopicArn; NewStateValue: Input should be ...' — short enough for a log line."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "document"
        parts.append(f"missing {where}" if error["type"] == "missing" else f"{where}: {error['msg']}")
    return "; ".join(parts)
