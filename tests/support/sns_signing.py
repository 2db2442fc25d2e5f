"""Sign SNS messages the way SNS does, with our own key and a self-signed certificate, and build CloudWatch
alarm notifications shaped like real ones.

The string to sign is written out here on purpose, not imported from bot.sns_verify: a verifier checked
against its own builder would accept its own mistakes.
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGION = "us-east-1"
ACCOUNT = "123456789012"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:canary-bot-alarms"
NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


@functools.cache
def signing_key(index: int = 0) -> rsa.RSAPrivateKey:
    """RSA key number `index`, made once per test run (key generation is the slow part of these tests)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class SigningIdentity:
    """An RSA key, its certificate, and the URL the certificate is "served" from."""

    key: rsa.RSAPrivateKey
    cert_pem: bytes
    cert_url: str


def make_identity(
    *,
    cn: str = "sns.amazonaws.com",
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=335),
    key: rsa.RSAPrivateKey | None = None,
    cert_url: str | None = None,
) -> SigningIdentity:
    key = key or signing_key(0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    url = cert_url or f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    return SigningIdentity(key, cert.public_bytes(serialization.Encoding.PEM), url)


@dataclass
class CertServer:
    """A cert_fetcher for SnsVerifier: serves registered PEMs and counts every fetch."""

    certs: dict[str, bytes] = field(default_factory=dict)
    fetches: list[str] = field(default_factory=list)

    def add(self, identity: SigningIdentity) -> SigningIdentity:
        self.certs[identity.cert_url] = identity.cert_pem
        return identity

    def __call__(self, url: str) -> bytes:
        self.fetches.append(url)
        if url not in self.certs:
            raise OSError(f"404 for {url}")
        return self.certs[url]


# The documented order (AWS, "Verifying the signatures of Amazon SNS messages").
_NOTIFICATION_KEYS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
_CONFIRMATION_KEYS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]


def aws_string_to_sign(envelope: dict[str, Any]) -> bytes:
    keys = _NOTIFICATION_KEYS if envelope["Type"] == "Notification" else _CONFIRMATION_KEYS
    text = "".join(f"{key}\n{envelope[key]}\n" for key in keys if key in envelope)
    return text.encode("utf-8")


def sign(envelope: dict[str, Any], identity: SigningIdentity, version: str = "1") -> dict[str, Any]:
    """The envelope with SignatureVersion, Signature and SigningCertURL set, SHA1 (v1) or SHA256 (v2)."""
    algorithm: hashes.HashAlgorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signed = {**envelope, "SignatureVersion": version, "SigningCertURL": identity.cert_url}
    signature = identity.key.sign(aws_string_to_sign(signed), padding.PKCS1v15(), algorithm)
    signed["Signature"] = base64.b64encode(signature).decode("ascii")
    return signed


def notification(
    message: str,
    identity: SigningIdentity,
    *,
    subject: str | None = "ALARM: canary error rate",
    version: str = "1",
    topic_arn: str = TOPIC_ARN,
    message_id: str | None = None,
) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": message,
        "Timestamp": "2026-11-28T14:00:00.123Z",
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:x",
    }
    if subject is not None:
        envelope["Subject"] = subject
    return sign(envelope, identity, version)


def subscription_confirmation(
    identity: SigningIdentity, *, topic_arn: str = TOPIC_ARN, version: str = "1"
) -> dict[str, Any]:
    token = uuid.uuid4().hex * 2
    region = topic_arn.split(":")[3]
    envelope = {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic_arn,
        "Message": f"You have chosen to subscribe to the topic {topic_arn}.\nTo confirm, visit SubscribeURL.",
        "SubscribeURL": (
            f"https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}"
        ),
        "Timestamp": "2026-11-28T14:00:00.123Z",
    }
    return sign(envelope, identity, version)


def alarm_message(
    *,
    alarm_name: str = "canary-bot/production-lego-api/production/v2/error-rate",
    function: str = "production-lego-api",
    alias: str = "production",
    version: str = "2",
    state: str = "ALARM",
    shape: str = "metrics",
) -> str:
    """CloudWatch's alarm JSON. shape="metrics": a metric math trigger (our error-rate alarm);
    shape="dimensions": a single-metric trigger (our p95 alarm)."""
    dimensions = [
        {"value": function, "name": "FunctionName"},
        {"value": f"{function}:{alias}", "name": "Resource"},
        {"value": version, "name": "ExecutedVersion"},
    ]
    trigger: dict[str, Any] = {
        "Period": 300,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "",
    }
    if shape == "metrics":
        trigger |= {
            "Threshold": 0.001,
            "Metrics": [
                {
                    "Expression": "m_errors / m_invocations",
                    "Id": "e1",
                    "Label": "v2 error rate",
                    "ReturnData": True,
                },
                _metric_stat("m_errors", "Errors", dimensions),
                _metric_stat("m_invocations", "Invocations", dimensions),
            ],
        }
    else:
        trigger |= {
            "MetricName": "Duration",
            "Namespace": "AWS/Lambda",
            "StatisticType": "ExtendedStatistic",
            "ExtendedStatistic": "p95",
            "Unit": None,
            "Dimensions": dimensions,
            "Threshold": 100.0,
        }
    return json.dumps(
        {
            "AlarmName": alarm_name,
            "AlarmDescription": "canary-bot deployment d-1: error rate above 0.1%",
            "AWSAccountId": ACCOUNT,
            "AlarmConfigurationUpdatedTimestamp": "2026-11-28T13:00:00.000+0000",
            "NewStateValue": state,
            "NewStateReason": "Threshold Crossed: 2 out of the last 2 datapoints were greater than 0.001",
            "StateChangeTime": "2026-11-28T14:00:00.123+0000",
            "Region": "US East (N. Virginia)",
            "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}",
            "OldStateValue": "OK",
            "OKActions": [TOPIC_ARN],
            "AlarmActions": [TOPIC_ARN],
            "InsufficientDataActions": [],
            "Trigger": trigger,
        }
    )


def _metric_stat(query_id: str, metric: str, dimensions: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Dimensions": dimensions, "MetricName": metric, "Namespace": "AWS/Lambda"},
            "Period": 300,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }
