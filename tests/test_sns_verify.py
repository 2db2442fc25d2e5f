"""SnsVerifier: authentic SNS messages pass; every forgery we can think of is refused, and says why."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from bot.alarm_event import SnsEnvelope, parse_sns_body
from bot.clock import ManualClock
from bot.sns_verify import (
    MAX_CACHED_CERTS,
    MAX_CACHED_FAILURES,
    NEW_CERT_FETCHES_PER_MINUTE,
    SnsVerificationError,
    SnsVerifier,
)
from tests.support.sns_signing import (
    NOW,
    REGION,
    TOPIC_ARN,
    CertServer,
    SigningIdentity,
    alarm_message,
    make_identity,
    notification,
    sign,
    signing_key,
    subscription_confirmation,
)

OTHER_TOPIC = f"arn:aws:sns:{REGION}:123456789012:someone-elses-topic"


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return make_identity()


@pytest.fixture
def certs(identity: SigningIdentity) -> CertServer:
    server = CertServer()
    server.add(identity)
    return server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def verifier(certs: CertServer, clock: ManualClock) -> SnsVerifier:
    return SnsVerifier({TOPIC_ARN}, cert_fetcher=certs, clock=clock)


def envelope(document: dict[str, Any]) -> SnsEnvelope:
    """Through the same JSON path a real POST takes."""
    return parse_sns_body(json.dumps(document))


def refused(verifier: SnsVerifier, document: dict[str, Any]) -> str:
    with pytest.raises(SnsVerificationError) as caught:
        verifier.verify(envelope(document))
    return caught.value.reason


# ---------------------------------------------------------------- authentic
@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", ['ALARM: "canary" in US East (N. Virginia)', None])
def test_authentic_notification_is_accepted(
    verifier: SnsVerifier, identity: SigningIdentity, version: str, subject: str | None
) -> None:
    verifier.verify(envelope(notification(alarm_message(), identity, subject=subject, version=version)))


def test_multiline_unicode_message_is_signed_verbatim(
    verifier: SnsVerifier, identity: SigningIdentity
) -> None:
    verifier.verify(envelope(notification("line one\nligne deux — é\n\n", identity, version="2")))


# ---------------------------------------------------------------- tampering
def test_tampered_message_is_refused(verifier: SnsVerifier, identity: SigningIdentity) -> None:
    document = notification(alarm_message(state="ALARM"), identity)
    document["Message"] = alarm_message(state="OK")
    assert "signature does not match" in refused(verifier, document)


@pytest.mark.parametrize("version", ["1", "2"])
def test_tampered_subject_is_refused(verifier: SnsVerifier, identity: SigningIdentity, version: str) -> None:
    document = notification(alarm_message(), identity, subject="ALARM: x", version=version)
    document["Subject"] = "OK: x"
    assert "signature does not match" in refused(verifier, document)


def test_dropped_subject_is_refused(verifier: SnsVerifier, identity: SigningIdentity) -> None:
    document = notification(alarm_message(), identity, subject="ALARM: x")
    del document["Subject"]
    assert "signature does not match" in refused(verifier, document)


def test_subject_left_out_of_the_signed_string_is_refused(
    verifier: SnsVerifier, identity: SigningIdentity
) -> None:
    # What moto does: it signs without Subject, then adds one. A correct verifier must say no.
    document = notification(alarm_message(), identity, subject=None)
    document["Subject"] = "ALARM: x"
    assert "signature does not match" in refused(verifier, document)


@pytest.mark.parametrize(
    "change",
    [
        {"MessageId": "another-id"},
        {"Timestamp": "2026-11-28T15:00:00.000Z"},
        {"TopicArn": f"arn:aws:sns:{REGION}:123456789012:alarms-2"},
        # Same fields re-labelled as a confirmation: the string to sign changes with Type.
        {
            "Type": "UnsubscribeConfirmation",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/",
            "Token": "t",
        },
    ],
)
def test_tampered_signed_field_is_refused(
    certs: CertServer, clock: ManualClock, identity: SigningIdentity, change: dict[str, str]
) -> None:
    verifier = SnsVerifier({TOPIC_ARN, change.get("TopicArn", TOPIC_ARN)}, cert_fetcher=certs, clock=clock)
    document = notification(alarm_message(), identity) | change
    assert "signature does not match" in refused(verifier, document)


def test_signature_from_another_key_is_refused(verifier: SnsVerifier, certs: CertServer) -> None:
    served = make_identity()
    attacker = make_identity(cert_url=served.cert_url, key=signing_key(1))  # same URL, another key
    certs.add(served)
    assert "signature does not match" in refused(verifier, notification(alarm_message(), attacker))


def test_signature_that_is_not_base64_is_refused(verifier: SnsVerifier, identity: SigningIdentity) -> None:
    document = notification(alarm_message(), identity)
    document["Signature"] = "not base64 !!"
    assert "not base64" in refused(verifier, document)


# ---------------------------------------------------------------- topic and version
def test_topic_not_on_the_allowlist_is_refused(certs: CertServer, clock: ManualClock) -> None:
    identity = certs.add(make_identity())
    verifier = SnsVerifier({OTHER_TOPIC}, cert_fetcher=certs, clock=clock)
    assert "not on the allowlist" in refused(verifier, notification(alarm_message(), identity))
    assert certs.fetches == []


@pytest.mark.parametrize("version", ["3", "0", "", "2.0", "SHA256"])
def test_unknown_signature_version_is_refused(
    verifier: SnsVerifier, identity: SigningIdentity, certs: CertServer, version: str
) -> None:
    document = notification(alarm_message(), identity, version="2")
    document["SignatureVersion"] = version
    assert "unsupported SignatureVersion" in refused(verifier, document)
    assert certs.fetches == []


def test_version_1_signature_does_not_pass_as_version_2(
    verifier: SnsVerifier, identity: SigningIdentity
) -> None:
    document = notification(alarm_message(), identity, version="1")
    document["SignatureVersion"] = "2"
    assert "signature does not match" in refused(verifier, document)


# ---------------------------------------------------------------- certificate URL
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem", "must use https"),
        ("https://evil.example.com/SimpleNotificationService-a.pem", "is not sns.us-east-1.amazonaws.com"),
        ("https://sns.us-east-1.amazonaws.com.evil.com/cert.pem", "is not sns.us-east-1.amazonaws.com"),
        ("https://evilsns.us-east-1.amazonaws.com/cert.pem", "is not sns.us-east-1.amazonaws.com"),
        ("https://sns.eu-west-1.amazonaws.com/cert.pem", "is not sns.us-east-1.amazonaws.com"),
        ("https://sns.us-east-1.amazonaws.com@evil.com/cert.pem", "is not sns.us-east-1.amazonaws.com"),
        ("https://evil.com@sns.us-east-1.amazonaws.com/cert.pem", "is not sns.us-east-1.amazonaws.com"),
        ("https://sns.us-east-1.amazonaws.com:8443/cert.pem", "is not sns.us-east-1.amazonaws.com"),
        ("https://sns.us-east-1.amazonaws.com\\@evil.com/cert.pem", "characters a URL must not have"),
        ("https://sns.us-east-1.amazonaws.com\n.evil.com/cert.pem", "characters a URL must not have"),
        ("https://sns.us-east-1.amazonaws.com/not-a-certificate.txt", "not name a .pem"),
        ("file:///etc/ssl/cert.pem", "must use https"),
    ],
)
def test_certificate_url_off_the_sns_host_is_refused_without_fetching(
    verifier: SnsVerifier, certs: CertServer, url: str, why: str
) -> None:
    # Validly signed and served at that URL: only the URL check stands in the way.
    identity = certs.add(make_identity(cert_url=url))
    assert why in refused(verifier, notification(alarm_message(), identity))
    assert certs.fetches == []


def test_china_partition_certificate_host_is_accepted(certs: CertServer, clock: ManualClock) -> None:
    topic = "arn:aws-cn:sns:cn-north-1:123456789012:alarms"
    identity = certs.add(
        make_identity(cert_url="https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-a.pem")
    )
    verifier = SnsVerifier({topic}, cert_fetcher=certs, clock=clock)
    verifier.verify(envelope(notification(alarm_message(), identity, topic_arn=topic)))


def test_certificate_url_host_is_compared_case_insensitively(
    verifier: SnsVerifier, certs: CertServer
) -> None:
    identity = certs.add(
        make_identity(cert_url="https://SNS.us-east-1.AmazonAWS.com/SimpleNotificationService-b.pem")
    )
    verifier.verify(envelope(notification(alarm_message(), identity)))


# ---------------------------------------------------------------- the certificate itself
def test_expired_certificate_is_refused(verifier: SnsVerifier, certs: CertServer) -> None:
    expired = certs.add(
        make_identity(not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1))
    )
    assert "not valid now" in refused(verifier, notification(alarm_message(), expired))


def test_certificate_not_yet_valid_is_refused(verifier: SnsVerifier, certs: CertServer) -> None:
    future = certs.add(make_identity(not_before=NOW + timedelta(days=1), not_after=NOW + timedelta(days=400)))
    assert "not valid now" in refused(verifier, notification(alarm_message(), future))


def test_certificate_issued_to_another_name_is_refused(verifier: SnsVerifier, certs: CertServer) -> None:
    other = certs.add(make_identity(cn="evil.example.com"))
    assert "not sns.amazonaws.com" in refused(verifier, notification(alarm_message(), other))


def test_expected_certificate_name_is_configurable(certs: CertServer, clock: ManualClock) -> None:
    own = certs.add(make_identity(cn="test-signer.internal"))
    verifier = SnsVerifier(
        {TOPIC_ARN}, cert_fetcher=certs, clock=clock, expected_cert_cn="test-signer.internal"
    )
    verifier.verify(envelope(notification(alarm_message(), own)))


def test_unfetchable_certificate_is_refused(verifier: SnsVerifier, identity: SigningIdentity) -> None:
    missing = make_identity(cert_url="https://sns.us-east-1.amazonaws.com/SimpleNotificationService-gone.pem")
    assert "cannot fetch signing certificate" in refused(verifier, notification(alarm_message(), missing))


def test_certificate_that_is_not_pem_is_refused(verifier: SnsVerifier, certs: CertServer) -> None:
    url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-html.pem"
    certs.certs[url] = b"<html>not a certificate</html>"
    assert "not a PEM" in refused(verifier, notification(alarm_message(), make_identity(cert_url=url)))


# ---------------------------------------------------------------- cache
def test_certificate_is_fetched_once_then_cached(
    verifier: SnsVerifier, identity: SigningIdentity, certs: CertServer
) -> None:
    for version in ("1", "2", "1"):
        verifier.verify(envelope(notification(alarm_message(), identity, version=version)))
    assert certs.fetches == [identity.cert_url]


def test_cached_certificate_is_fetched_again_after_its_ttl(
    verifier: SnsVerifier, identity: SigningIdentity, certs: CertServer, clock: ManualClock
) -> None:
    verifier.verify(envelope(notification(alarm_message(), identity)))
    clock.advance(timedelta(minutes=59))
    verifier.verify(envelope(notification(alarm_message(), identity)))
    clock.advance(timedelta(minutes=2))
    verifier.verify(envelope(notification(alarm_message(), identity)))
    assert certs.fetches == [identity.cert_url, identity.cert_url]


def test_a_failed_fetch_is_remembered_for_a_minute_then_tried_again(
    verifier: SnsVerifier, certs: CertServer, clock: ManualClock
) -> None:
    late = make_identity()
    with pytest.raises(SnsVerificationError):
        verifier.verify(envelope(notification(alarm_message(), late)))
    certs.add(late)
    assert "remembered" in refused(verifier, notification(alarm_message(), late))
    clock.advance(timedelta(minutes=1))
    verifier.verify(envelope(notification(alarm_message(), late)))
    assert certs.fetches == [late.cert_url, late.cert_url]


def test_cached_certificate_that_expires_is_refused(certs: CertServer, clock: ManualClock) -> None:
    short = certs.add(make_identity(not_after=NOW + timedelta(minutes=10)))
    verifier = SnsVerifier({TOPIC_ARN}, cert_fetcher=certs, clock=clock, cert_cache_ttl=timedelta(days=1))
    verifier.verify(envelope(notification(alarm_message(), short)))
    clock.advance(timedelta(minutes=11))
    assert "not valid now" in refused(verifier, notification(alarm_message(), short))


# ---------------------------------------------------------------- subscription confirmation
class Opener:
    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        arn = f"{TOPIC_ARN}:0f1e2d3c"
        return (
            b"<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
            + arn.encode()
            + b"</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
        )


@pytest.mark.parametrize("version", ["1", "2"])
def test_subscription_confirmation_for_allowed_topic_is_verified_and_confirmed(
    verifier: SnsVerifier, identity: SigningIdentity, version: str
) -> None:
    document = subscription_confirmation(identity, version=version)
    opener = Opener()
    arn = verifier.confirm_subscription(envelope(document), opener)
    assert opener.urls == [document["SubscribeURL"]]
    assert arn == f"{TOPIC_ARN}:0f1e2d3c"


def test_subscription_confirmation_for_other_topic_is_not_confirmed(
    verifier: SnsVerifier, identity: SigningIdentity
) -> None:
    opener = Opener()
    with pytest.raises(SnsVerificationError, match="not on the allowlist"):
        verifier.confirm_subscription(
            envelope(subscription_confirmation(identity, topic_arn=OTHER_TOPIC)), opener
        )
    assert opener.urls == []


def test_subscription_confirmation_with_tampered_token_is_not_confirmed(
    verifier: SnsVerifier, identity: SigningIdentity
) -> None:
    document = subscription_confirmation(identity)
    document["Token"] = "forged"
    opener = Opener()
    with pytest.raises(SnsVerificationError, match="signature does not match"):
        verifier.confirm_subscription(envelope(document), opener)
    assert opener.urls == []


@pytest.mark.parametrize(
    "subscribe_url",
    [
        "https://evil.example.com/?Action=ConfirmSubscription&TopicArn={topic}&Token=t",
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}&Token=t",
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&TopicArn={topic}&Token=t",
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={other}&Token=t",
    ],
)
def test_subscribe_url_must_confirm_this_topic_on_the_sns_host(
    verifier: SnsVerifier, identity: SigningIdentity, subscribe_url: str
) -> None:
    document = subscription_confirmation(identity)
    document["SubscribeURL"] = subscribe_url.format(topic=TOPIC_ARN, other=OTHER_TOPIC)
    document = sign(document, identity)  # signed: only the URL rule can stop it
    opener = Opener()
    with pytest.raises(SnsVerificationError):
        verifier.confirm_subscription(envelope(document), opener)
    assert opener.urls == []


def test_notification_is_not_a_subscription_confirmation(
    verifier: SnsVerifier, identity: SigningIdentity
) -> None:
    opener = Opener()
    with pytest.raises(SnsVerificationError, match="expected a SubscriptionConfirmation"):
        verifier.confirm_subscription(envelope(notification(alarm_message(), identity)), opener)
    assert opener.urls == []


def test_unsubscribe_confirmation_is_verified_with_the_confirmation_fields(
    verifier: SnsVerifier, identity: SigningIdentity
) -> None:
    document = subscription_confirmation(identity)
    document["Type"] = "UnsubscribeConfirmation"
    verifier.verify(envelope(sign(document, identity)))
    document["Token"] = "forged"
    assert "signature does not match" in refused(verifier, document)


# ---------------------------------------------------------------- floods of forged messages
def test_a_flood_naming_one_bad_certificate_url_costs_one_fetch(
    verifier: SnsVerifier, certs: CertServer
) -> None:
    forger = make_identity()  # its certificate is not served: every fetch of its URL fails
    for _ in range(200):
        refused(verifier, notification(alarm_message(), forger))
    assert certs.fetches == [forger.cert_url]


def test_a_flood_naming_a_new_url_each_time_is_fetched_at_most_the_budget_per_minute(
    verifier: SnsVerifier, certs: CertServer, identity: SigningIdentity, clock: ManualClock
) -> None:
    reasons = [refused(verifier, notification(alarm_message(), make_identity())) for _ in range(50)]
    assert len(certs.fetches) == NEW_CERT_FETCHES_PER_MINUTE
    assert "not fetching more" in reasons[-1]
    clock.advance(timedelta(minutes=1))
    verifier.verify(envelope(notification(alarm_message(), identity)))  # the real topic's messages pass again


def test_concurrent_requests_for_one_url_share_one_fetch(
    certs: CertServer, identity: SigningIdentity
) -> None:
    gate = threading.Event()

    def slow_fetch(url: str) -> bytes:
        gate.wait(5)
        return certs(url)

    verifier = SnsVerifier({TOPIC_ARN}, cert_fetcher=slow_fetch, clock=ManualClock(NOW))
    errors: list[BaseException] = []

    def verify() -> None:
        try:
            verifier.verify(envelope(notification(alarm_message(), identity)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=verify) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(10)
    assert errors == [] and certs.fetches == [identity.cert_url]


def test_both_caches_are_bounded(certs: CertServer, clock: ManualClock) -> None:
    verifier = SnsVerifier({TOPIC_ARN}, cert_fetcher=certs, clock=clock, fetches_per_minute=10_000)
    for _ in range(MAX_CACHED_FAILURES + 20):
        refused(verifier, notification(alarm_message(), make_identity()))
    for _ in range(MAX_CACHED_CERTS + 5):
        verifier.verify(envelope(notification(alarm_message(), certs.add(make_identity()))))
    assert len(verifier._failures) <= MAX_CACHED_FAILURES
    assert len(verifier._certs) <= MAX_CACHED_CERTS
