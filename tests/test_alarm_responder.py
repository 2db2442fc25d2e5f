"""Alarm notifications → immediate rollback of a live canary, alerts, dedupe; the SNS HTTPS intake's answers."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from bot.alarm_event import BadNotification, SnsEnvelope, parse_sns_body
from bot.comms import internal_message
from bot.composition import alarm_responder
from bot.events import AlarmAlert, TrafficChanged
from bot.model import State
from bot.ports import AwsFailure
from bot.sns_http import SnsHttpIntake
from bot.sns_verify import SnsVerifier
from tests.support import sns_signing as sns
from tests.support.world import FN, World, make_world


@pytest.fixture(scope="module")
def identity() -> sns.SigningIdentity:
    return sns.make_identity()


def _envelope(identity: sns.SigningIdentity, **alarm: str) -> SnsEnvelope:
    return parse_sns_body(json.dumps(sns.notification(sns.alarm_message(**alarm), identity)))


def _alerts(world: World) -> list[AlarmAlert]:
    return [e for e in world.notifier.events if isinstance(e, AlarmAlert)]


def test_an_alarm_on_a_live_canary_rolls_it_back_at_once_and_alerts(identity: sns.SigningIdentity) -> None:
    world = make_world()
    world.start()
    responder = alarm_responder(world.service)
    received = world.clock.now()
    world.clock.advance(timedelta(milliseconds=400))

    outcome = responder.handle(_envelope(identity), received_at=received)

    assert outcome.action == "rolled_back"
    assert world.alias() == ("1", {})
    assert world.service.history(FN)[0].deployment.state is State.ROLLED_BACK
    assert outcome.seconds_to_revert == pytest.approx(0.4)
    alert = _alerts(world)[-1]
    assert alert.rolled_back and alert.state == "ALARM"
    assert alert.alarm_name.endswith("/v2/error-rate")
    assert "Threshold Crossed" in alert.reason
    rollback = next(e for e in world.notifier.events if isinstance(e, TrafficChanged))
    assert rollback.automatic and rollback.detected_at == received
    assert "alarm canary-bot/production-lego-api/production/v2/error-rate" in (rollback.reason or "")
    d = world.service.history(FN)[0].deployment
    assert d.cause is not None and d.cause.kind == "alarm" and d.cause.alarm == alert.alarm_name
    text = internal_message(d, reason=d.reason or "", service_name=None, now=world.clock.now())
    assert f"- Reason: CloudWatch alarm {alert.alarm_name}: Threshold Crossed" in text


def test_the_same_notification_twice_is_handled_once(identity: sns.SigningIdentity) -> None:
    world = make_world()
    world.start()
    responder = alarm_responder(world.service)
    envelope = _envelope(identity)
    assert responder.handle(envelope).action == "rolled_back"
    writes = len(world.traffic.routing_writes)
    assert responder.handle(envelope).action == "alerted"  # about a canary already rolled back
    assert len(world.traffic.routing_writes) == writes
    assert len(_alerts(world)) == 1


def test_two_alarms_for_one_canary_give_one_rollback_and_one_story(identity: sns.SigningIdentity) -> None:
    world = make_world()
    world.start()
    responder = alarm_responder(world.service)
    writes = len(world.traffic.routing_writes)
    assert responder.handle(_envelope(identity)).action == "rolled_back"
    second = _envelope(
        identity, alarm_name="canary-bot/production-lego-api/production/v2/p95", shape="dimensions"
    )
    assert responder.handle(second).action == "alerted"
    assert len(world.traffic.routing_writes) == writes + 1
    alerts = _alerts(world)
    assert [a.rolled_back for a in alerts] == [True, False]
    assert alerts[1].follow_up  # a quiet note in the thread: no broadcast, no mentions
    assert not any("FAILED" in a.reason for a in alerts)


def test_an_alarm_rollback_that_aws_throttles_stays_durable_and_the_reconciler_finishes_it(
    identity: sns.SigningIdentity,
) -> None:
    world = make_world()
    world.start()
    world.traffic.fail_next(AwsFailure("ThrottlingException"))
    outcome = alarm_responder(world.service).handle(_envelope(identity))
    assert outcome.action == "rollback_pending"  # acknowledged: the intent is in the store
    d = world.service.history(FN)[0].deployment
    assert d.state is State.ROLLING_BACK
    assert world.alias() == ("1", {"2": 0.05})
    world.clock.advance(timedelta(minutes=2))
    world.service.reconciler.run_once()
    assert world.alias() == ("1", {})
    assert world.service.history(FN)[0].deployment.state is State.ROLLED_BACK


def test_an_alarm_with_no_live_canary_only_alerts(identity: sns.SigningIdentity) -> None:
    world = make_world()
    outcome = alarm_responder(world.service).handle(_envelope(identity))
    assert outcome.action == "alerted"
    assert world.traffic.routing_writes == []
    assert _alerts(world)[-1].rolled_back is False


def test_an_alarm_about_the_stable_version_does_not_roll_the_canary_back(
    identity: sns.SigningIdentity,
) -> None:
    world = make_world()
    world.start()
    outcome = alarm_responder(world.service).handle(_envelope(identity, version="1"))
    assert outcome.action == "alerted"
    assert world.alias() == ("1", {"2": 0.05})


def test_an_ok_notification_is_a_note_in_the_thread(identity: sns.SigningIdentity) -> None:
    world = make_world()
    world.start()
    outcome = alarm_responder(world.service).handle(_envelope(identity, state="OK"))
    assert outcome.action == "noted"
    assert world.alias() == ("1", {"2": 0.05})
    alert = _alerts(world)[-1]
    assert alert.state == "OK" and alert.deployment is not None


def test_a_drifted_alias_is_not_overwritten_and_the_alert_says_the_rollback_stopped(
    identity: sns.SigningIdentity,
) -> None:
    world = make_world()
    world.start()
    world.traffic.force_change(FN, "production", "1", {"2": 0.5})
    outcome = alarm_responder(world.service).handle(_envelope(identity))
    assert outcome.action == "rollback_stopped"
    assert world.alias() == ("1", {"2": 0.5})
    assert "rollback stopped" in _alerts(world)[-1].reason


def test_a_message_that_is_not_an_alarm_is_poison(identity: sns.SigningIdentity) -> None:
    world = make_world()
    envelope = parse_sns_body(json.dumps(sns.notification("hello, not an alarm", identity)))
    with pytest.raises(BadNotification):
        alarm_responder(world.service).handle(envelope)


def test_a_failure_while_handling_releases_the_message_for_a_retry(identity: sns.SigningIdentity) -> None:
    world = make_world()
    world.start()
    responder = alarm_responder(world.service)
    envelope = _envelope(identity)
    original = world.service.automatic.roll_back_for_alarm

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("database went away")

    world.service.automatic.roll_back_for_alarm = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        responder.handle(envelope)
    world.service.automatic.roll_back_for_alarm = original  # type: ignore[method-assign]
    assert responder.handle(envelope).action == "rolled_back"


# ---------------------------------------------------------------- SNS HTTPS intake
def _intake(
    world: World, identity: sns.SigningIdentity
) -> tuple[SnsHttpIntake, list[tuple[str, str]], list[str]]:
    certs = sns.CertServer()
    certs.add(identity)
    poison: list[tuple[str, str]] = []
    opened: list[str] = []

    def opener(url: str) -> bytes:
        opened.append(url)
        return b"<ConfirmSubscriptionResponse><SubscriptionArn>arn:x</SubscriptionArn></ConfirmSubscriptionResponse>"

    verifier = SnsVerifier({sns.TOPIC_ARN}, cert_fetcher=certs, clock=world.clock)
    intake = SnsHttpIntake(
        verifier, alarm_responder(world.service), on_poison=lambda i, r: poison.append((i, r)), opener=opener
    )
    return intake, poison, opened


def test_a_signed_alarm_over_https_rolls_back(identity: sns.SigningIdentity) -> None:
    world = make_world()
    world.start()
    intake, _, _ = _intake(world, identity)
    status, _ = intake(json.dumps(sns.notification(sns.alarm_message(), identity)).encode(), {})
    assert status == 200
    assert world.alias() == ("1", {})


def test_a_tampered_alarm_is_refused_with_403_and_changes_nothing(identity: sns.SigningIdentity) -> None:
    world = make_world()
    world.start()
    intake, _, _ = _intake(world, identity)
    signed = sns.notification(sns.alarm_message(state="OK"), identity)
    signed["Message"] = sns.alarm_message(state="ALARM")
    status, _ = intake(json.dumps(signed).encode(), {})
    assert status == 403
    assert world.alias() == ("1", {"2": 0.05})


def test_a_message_from_a_topic_not_allowed_is_refused(identity: sns.SigningIdentity) -> None:
    world = make_world()
    world.start()
    intake, _, _ = _intake(world, identity)
    other = "arn:aws:sns:us-east-1:123456789012:someone-else"
    status, _ = intake(
        json.dumps(sns.notification(sns.alarm_message(), identity, topic_arn=other)).encode(), {}
    )
    assert status == 403
    assert world.alias() == ("1", {"2": 0.05})


def test_subscription_confirmation_is_confirmed_only_when_verified(identity: sns.SigningIdentity) -> None:
    world = make_world()
    intake, _, opened = _intake(world, identity)
    status, _ = intake(json.dumps(sns.subscription_confirmation(identity)).encode(), {})
    assert status == 200 and len(opened) == 1
    forged = sns.subscription_confirmation(
        sns.make_identity(key=sns.signing_key(1), cert_url=identity.cert_url)
    )
    status, _ = intake(json.dumps(forged).encode(), {})
    assert status == 403 and len(opened) == 1


def test_an_authentic_message_that_is_not_an_alarm_is_reported_once(identity: sns.SigningIdentity) -> None:
    world = make_world()
    intake, poison, _ = _intake(world, identity)
    status, _ = intake(json.dumps(sns.notification("deploy finished", identity)).encode(), {})
    assert status == 200
    assert len(poison) == 1


def test_garbage_on_the_sns_endpoint_is_a_400() -> None:
    world = make_world()
    intake, _, _ = _intake(world, sns.make_identity())
    assert intake(b"{not json", {})[0] == 400


def test_the_rollback_message_and_the_alarm_alert_give_one_measured_time(
    identity: sns.SigningIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notification received → UpdateAlias answered, measured once: every message shows that figure, however
    long the bookkeeping after the write takes (here every clock read costs 3 ms)."""
    from bot.views import alarm_blocks, traffic_changed_blocks
    from tests.support.block_kit import text_of

    world = make_world()
    world.start()
    read = world.clock.now

    def ticking() -> object:
        world.clock.advance(timedelta(milliseconds=3))
        return read()

    monkeypatch.setattr(world.clock, "now", ticking)
    received = read()
    alarm_responder(world.service).handle(_envelope(identity), received_at=received)
    rollback = next(e for e in world.notifier.events if isinstance(e, TrafficChanged))
    alert = _alerts(world)[-1]
    assert rollback.reverted_at is not None and alert.reverted_at == rollback.reverted_at
    now = read()
    policy = world.service.policy_for(FN)
    said = text_of(traffic_changed_blocks(rollback, policy=policy, now=now))
    alerted = text_of(alarm_blocks(alert, policy=policy, now=now))

    (first,) = set(re.findall(r"\((\d+ ms)\)", said))
    assert re.findall(r"\((\d+ ms)\)", alerted) == [first]
