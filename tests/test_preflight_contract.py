"""The preflight facts port, real and fake alike: the same world (moto, with Stubber for ElastiCache's security
groups and IAM's policy simulator, which moto lacks) gives the same checklist, check for check, word for word."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from moto import mock_aws

from bot.preflight import PreflightReport, PreflightRequest, evaluate, facts_needed
from tests.support.preflight_world import LEGO_API, MotoPreflightWorld, request


@pytest.fixture
def world() -> Iterator[MotoPreflightWorld]:
    with mock_aws():
        yield MotoPreflightWorld()


def both(world: MotoPreflightWorld, req: PreflightRequest) -> tuple[PreflightReport, PreflightReport]:
    needs = facts_needed(req.checks)
    adapter, _stubs = world.adapter(req)
    real = evaluate(adapter.gather(req, needs))
    fake = evaluate(world.mirrored_fake().gather(req, needs))
    return real, fake


def statuses(report: PreflightReport) -> dict[str, str]:
    return {r.name: r.status for r in report.results}


def test_a_ready_function_passes_every_check_against_moto_and_the_fake_alike(
    world: MotoPreflightWorld,
) -> None:
    real, fake = both(world, request(world.version))
    assert real == fake
    assert statuses(real) == {name: "pass" for name in statuses(real)}
    assert len(real.results) == 9  # function + the seed's eight
    reach = next(r for r in real.results if r.name == "cache_reachable")
    assert (
        world.sg_cache in reach.evidence and world.sg_function in reach.evidence and "6379" in reach.evidence
    )


BREAKS: dict[str, Callable[[MotoPreflightWorld], None]] = {
    "cache_reachable": MotoPreflightWorld.break_cache_reachable,
    "secret": MotoPreflightWorld.break_secret,
    "billing_alarm": MotoPreflightWorld.break_billing_alarm,
    "alarms_quiet": MotoPreflightWorld.break_alarms_quiet,
    "permissions": MotoPreflightWorld.break_permissions,
    "baseline_healthy": MotoPreflightWorld.break_baseline_healthy,
}


@pytest.mark.parametrize("check", sorted(BREAKS))
def test_breaking_one_thing_fails_exactly_its_check_in_both(world: MotoPreflightWorld, check: str) -> None:
    BREAKS[check](world)
    real, fake = both(world, request(world.version))
    assert real == fake
    assert [r.name for r in real.failed] == [check]


def test_a_version_outside_the_vpc_fails_vpc_and_cache_reachable_in_both(world: MotoPreflightWorld) -> None:
    real, fake = both(world, request("2"))
    assert real == fake
    assert [r.name for r in real.failed] == ["vpc", "cache_reachable"]


def test_publish_without_the_cache_url_fails_the_url_checks_on_latest_in_both(
    world: MotoPreflightWorld,
) -> None:
    real, fake = both(world, request(None, env_changes={"REDIS_URL": None}))
    assert real == fake
    assert real.version == "$LATEST"
    assert [r.name for r in real.failed] == ["redis_url", "cache_reachable"]
    assert "REDIS_URL is not set" in real.failed[0].evidence


def test_a_missing_function_fails_the_function_check_and_skips_the_rest_in_both(
    world: MotoPreflightWorld,
) -> None:
    real, fake = both(world, request(None, function="no-such-function"))
    assert real == fake
    assert real.results[0].name == "function" and real.results[0].status == "fail"
    assert "does not exist" in real.results[0].evidence
    assert all(r.evidence.startswith("skipped") for r in real.results[1:])


def test_a_missing_version_fails_the_function_check_in_both(world: MotoPreflightWorld) -> None:
    real, fake = both(world, request("9", checks=()))
    assert real == fake
    assert statuses(real) == {"function": "fail"}
    assert "version 9" in real.results[0].evidence


def test_a_billing_alarm_above_the_policys_threshold_is_a_warning_in_both(world: MotoPreflightWorld) -> None:
    world.put_billing_alarm(500)
    real, fake = both(world, request(world.version))
    assert real == fake
    assert [r.name for r in real.warned] == ["billing_alarm"]
    assert "$500" in real.warned[0].evidence and "$50" in real.warned[0].evidence


def test_only_the_facts_the_checks_need_are_gathered(world: MotoPreflightWorld) -> None:
    req = request(world.version, checks=("secret",))
    adapter, (cache_stub, iam_stub) = world.adapter(req)
    report = evaluate(adapter.gather(req, facts_needed(req.checks)))
    assert [r.name for r in report.results] == ["function", "secret"]
    assert world.metrics.asked == []
    with pytest.raises(AssertionError):
        cache_stub.assert_no_pending_responses()  # ElastiCache was never asked
    with pytest.raises(AssertionError):
        iam_stub.assert_no_pending_responses()  # nor IAM


def test_a_denied_describe_call_makes_its_check_a_warning_not_a_pass_nor_a_crash(
    world: MotoPreflightWorld,
) -> None:
    from botocore.stub import Stubber

    req = request(world.version, checks=("secret",))
    adapter, _ = world.adapter(req)
    denied = Stubber(world.secrets)
    denied.add_client_error("describe_secret", "AccessDeniedException", "not allowed", 400)
    with denied:
        report = evaluate(adapter.gather(req, facts_needed(req.checks)))
    secret = report.results[1]
    assert secret.status == "warn"
    assert "AccessDeniedException" in secret.evidence


def test_the_baseline_is_the_stable_versions_last_hour_of_complete_periods(world: MotoPreflightWorld) -> None:
    req = request(world.version, checks=("baseline_healthy",))
    adapter, _ = world.adapter(req)
    adapter.gather(req, facts_needed(req.checks))
    (asked,) = world.metrics.asked
    assert (asked.function, asked.canary_version, asked.stable_version) == (LEGO_API, "1", "1")
    assert asked.end.minute % 5 == 0 and asked.end - asked.start == __import__("datetime").timedelta(hours=1)
