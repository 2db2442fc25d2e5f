"""Parsing SNS envelopes and the CloudWatch alarm JSON inside them; malformed input says what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.alarm_event import BadNotification, SnsEnvelope, parse_alarm, parse_sns_body
from tests.support.sns_signing import (
    TOPIC_ARN,
    alarm_message,
    make_identity,
    notification,
    subscription_confirmation,
)

IDENTITY = make_identity()


def envelope_with(message: str, **changes: Any) -> SnsEnvelope:
    return parse_sns_body(json.dumps(notification(message, IDENTITY) | changes))


def alarm_with(**changes: Any) -> str:
    document = json.loads(alarm_message()) | changes
    return json.dumps(document)


# ---------------------------------------------------------------- envelope
def test_envelope_parses_from_bytes_and_keeps_signed_values_verbatim() -> None:
    document = notification(alarm_message(), IDENTITY, subject="ALARM: x")
    document["MessageAttributes"] = {"k": {"Type": "String", "Value": "v"}}  # unknown keys are ignored
    envelope = parse_sns_body(json.dumps(document).encode())
    assert envelope.Type == "Notification"
    assert envelope.TopicArn == TOPIC_ARN
    assert envelope.Subject == "ALARM: x"
    assert envelope.Message == document["Message"]
    assert envelope.Timestamp == document["Timestamp"]
    assert envelope.SignatureVersion == "1"


def test_subscription_confirmation_parses_with_token_and_subscribe_url() -> None:
    document = subscription_confirmation(IDENTITY)
    envelope = parse_sns_body(json.dumps(document))
    assert (envelope.Type, envelope.Token, envelope.SubscribeURL) == (
        "SubscriptionConfirmation",
        document["Token"],
        document["SubscribeURL"],
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "body is empty"),
        ("   ", "body is empty"),
        (b"\xff\xfe", "not UTF-8"),
        ("<xml/>", "body is not JSON"),
        ("[1, 2]", "JSON but not an object (got list)"),
        ('"text"', "JSON but not an object (got str)"),
        ("{}", "missing Type"),
    ],
)
def test_malformed_body_is_refused_with_a_reason(body: str | bytes, why: str) -> None:
    with pytest.raises(BadNotification, match=why.replace("(", r"\(").replace(")", r"\)")):
        parse_sns_body(body)


def test_envelope_missing_signature_fields_names_them() -> None:
    document = notification(alarm_message(), IDENTITY)
    del document["Signature"], document["SigningCertURL"]
    with pytest.raises(BadNotification) as caught:
        parse_sns_body(json.dumps(document))
    assert "missing Signature" in str(caught.value)
    assert "missing SigningCertURL" in str(caught.value)


def test_unknown_envelope_type_is_refused() -> None:
    document = notification(alarm_message(), IDENTITY) | {"Type": "Surprise"}
    with pytest.raises(BadNotification, match="not an SNS envelope: Type"):
        parse_sns_body(json.dumps(document))


def test_bare_alarm_from_raw_delivery_is_named_as_such() -> None:
    with pytest.raises(BadNotification, match="raw message delivery"):
        parse_sns_body(alarm_message())


# ---------------------------------------------------------------- alarm
@pytest.mark.parametrize("shape", ["metrics", "dimensions"])
def test_alarm_names_function_alias_and_version_from_either_trigger_shape(shape: str) -> None:
    message = alarm_message(function="production-lego-api", alias="production", version="7", shape=shape)
    alarm = parse_alarm(envelope_with(message))
    assert (alarm.function_name, alarm.alias, alarm.version) == ("production-lego-api", "production", "7")
    assert alarm.is_alarm
    assert alarm.AlarmName == "canary-bot/production-lego-api/production/v2/error-rate"
    assert alarm.OldStateValue == "OK"
    assert alarm.StateChangeTime == datetime(2026, 11, 28, 14, 0, 0, 123000, tzinfo=UTC)


def test_ok_transition_is_not_an_alarm() -> None:
    assert not parse_alarm(envelope_with(alarm_message(state="OK"))).is_alarm


def test_api_spelled_dimensions_are_understood() -> None:
    trigger = {
        "MetricName": "Errors",
        "Namespace": "AWS/Lambda",
        "Dimensions": [
            {"Name": "FunctionName", "Value": "orders"},
            {"Name": "Resource", "Value": "orders:live"},
        ],
    }
    alarm = parse_alarm(envelope_with(alarm_with(Trigger=trigger)))
    assert (alarm.function_name, alarm.alias, alarm.version) == ("orders", "live", None)


def test_function_comes_from_resource_when_function_name_is_absent() -> None:
    trigger = {"Dimensions": [{"name": "Resource", "value": "orders:live"}]}
    alarm = parse_alarm(envelope_with(alarm_with(Trigger=trigger)))
    assert (alarm.function_name, alarm.alias) == ("orders", "live")


def test_alarm_on_a_non_lambda_metric_names_no_function() -> None:
    trigger = {"MetricName": "CPUUtilization", "Dimensions": [{"name": "InstanceId", "value": "i-0abc"}]}
    alarm = parse_alarm(envelope_with(alarm_with(Trigger=trigger)))
    assert (alarm.function_name, alarm.alias, alarm.version) == (None, None, None)


def test_unqualified_resource_has_no_alias() -> None:
    trigger = {
        "Dimensions": [{"name": "FunctionName", "value": "orders"}, {"name": "Resource", "value": "orders"}]
    }
    assert parse_alarm(envelope_with(alarm_with(Trigger=trigger))).alias is None


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ("Rolled back production-lego-api", "SNS Message is not JSON"),
        ("[]", "SNS Message is JSON but not an object"),
        (json.dumps({"hello": "world"}), "not a CloudWatch alarm: missing AlarmName"),
        (alarm_with(NewStateValue="ON_FIRE"), "not a CloudWatch alarm: NewStateValue"),
        (alarm_with(StateChangeTime="yesterday"), "not a CloudWatch alarm: StateChangeTime"),
        (alarm_with(Trigger=None), "not a CloudWatch alarm: Trigger"),
    ],
)
def test_message_that_is_not_an_alarm_is_refused_with_a_reason(message: str, why: str) -> None:
    with pytest.raises(BadNotification, match=why):
        parse_alarm(envelope_with(message))


def test_confirmation_carries_no_alarm() -> None:
    with pytest.raises(BadNotification, match="SubscriptionConfirmation carries no alarm"):
        parse_alarm(parse_sns_body(json.dumps(subscription_confirmation(IDENTITY))))


def test_bad_notification_is_a_value_error() -> None:
    assert issubclass(BadNotification, ValueError)
