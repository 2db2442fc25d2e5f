"""Each preflight check, pure: facts in, ✅ / 🔴 / ⚠️ with evidence out. One passing and one failing fixture per
check (and the ⚠️ cases), through the in-memory fake the service and the demo use."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import PolicyError, load_policy
from bot.model import Thresholds
from bot.preflight import (
    CHECKS,
    SEED_CHECKS,
    AlarmFact,
    CacheFacts,
    Check,
    CheckResult,
    PreflightFacts,
    PreflightRequest,
    PreflightSettings,
    SecurityRule,
    checks_for,
    evaluate,
    facts_needed,
    parse_cache_url,
    register,
)
from canary_demo.fakes.preflight import FakePreflight
from tests.support.preflight_world import CACHE_HOST, CACHE_URL, SECRET, periods

FN = "production-lego-api"
SG_FN, SG_CACHE = "sg-0function", "sg-0cache"


def ready() -> FakePreflight:
    """The seed's function, ready for its Redis canary: every check passes."""
    fake = FakePreflight()
    fake.add_function(
        FN,
        env={"REDIS_URL": CACHE_URL},
        vpc_id="vpc-0lego",
        subnets={"subnet-0a": "10.0.1.0/24"},
        security_groups=(SG_FN,),
    )
    fake.add_security_group(SG_FN)
    fake.add_security_group(
        SG_CACHE, ingress=(SecurityRule(protocol="tcp", from_port=6379, to_port=6379, groups=(SG_FN,)),)
    )
    fake.caches.append(
        CacheFacts(id="production-cache", address=CACHE_HOST, port=6379, security_groups=(SG_CACHE,))
    )
    fake.secrets.add(SECRET)
    fake.billing_alarms.append(
        AlarmFact(
            name="billing", state="OK", namespace="AWS/Billing", metric="EstimatedCharges", threshold=50
        )
    )
    fake.baseline[FN] = periods()
    return fake


def run(fake: FakePreflight, check: str, **request: Any) -> CheckResult:
    fields: dict[str, Any] = {
        "function": FN,
        "alias": "production",
        "version": "2",
        "checks": (check,),
        "settings": PreflightSettings(secret=SECRET),
    }
    req = PreflightRequest(**(fields | request))
    report = evaluate(fake.gather(req, facts_needed(req.checks)))
    return report.results[-1]


def test_the_ready_world_passes_every_check_of_the_seeds_list() -> None:
    req = PreflightRequest(
        function=FN,
        alias="production",
        version="2",
        checks=SEED_CHECKS,
        settings=PreflightSettings(secret=SECRET),
    )
    report = evaluate(ready().gather(req, facts_needed(req.checks)))
    assert [r.status for r in report.results] == ["pass"] * 9, [r.line() for r in report.results]
    assert report.ok and report.summary() == "preflight of production-lego-api:production v2: 9 ✅"


# ---------------------------------------------------------------- function
def test_function_passes_when_function_alias_and_version_exist() -> None:
    result = run(ready(), "function")
    assert result.status == "pass" and "routes v1" in result.evidence


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"function": "nope"}, "function nope does not exist"),
        ({"alias": "staging"}, "alias staging of production-lego-api does not exist"),
        ({"version": "7"}, "version 7 of production-lego-api does not exist"),
    ],
)
def test_function_fails_naming_what_is_missing(change: dict[str, str], words: str) -> None:
    result = run(ready(), "function", **change)
    assert result.status == "fail" and words in result.evidence


@pytest.mark.parametrize("check", ["redis_url", "vpc", "cache_reachable"])
def test_checks_of_a_version_that_does_not_exist_say_skipped_not_made_up_evidence(check: str) -> None:
    result = run(ready(), check, version="999")
    assert result.status == "warn"
    assert result.evidence == "skipped: version 999 does not exist"


# ---------------------------------------------------------------- redis_url
def test_redis_url_passes_with_host_and_port() -> None:
    result = run(ready(), "redis_url")
    assert result.status == "pass" and f"{CACHE_HOST}:6379" in result.evidence


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://cache:6379", "'http' is not redis://"),
        ("redis://", "no host"),
        ("redis://cache:notaport", "not a URL"),
        ("redis://cache:6379/x", "database 'x' is not a number"),
    ],
)
def test_redis_url_fails_when_it_does_not_parse_as_a_redis_url(url: str, words: str) -> None:
    fake = ready()
    fake.functions[FN].versions["2"]["REDIS_URL"] = url
    result = run(fake, "redis_url")
    assert result.status == "fail" and words in result.evidence


def test_redis_url_fails_when_unset_and_reads_publish_changes_on_latest() -> None:
    fake = ready()
    assert run(fake, "redis_url", version=None, env_changes={"REDIS_URL": None}).evidence == (
        "REDIS_URL is not set on $LATEST"
    )
    fixed = run(fake, "redis_url", version=None, env_changes={"REDIS_URL": "rediss://other:6380"})
    assert fixed.status == "pass" and "other:6380 after --publish's changes" in fixed.evidence


def test_the_cache_url_variable_is_the_policys_not_hard_wired() -> None:
    fake = ready()
    fake.functions[FN].versions["2"] = {"CACHE_ENDPOINT": "redis://elsewhere:6379"}
    result = run(fake, "redis_url", settings=PreflightSettings(cache_url_env="CACHE_ENDPOINT"))
    assert result.status == "pass" and "CACHE_ENDPOINT → elsewhere:6379" in result.evidence


def test_parse_cache_url_defaults_the_port() -> None:
    assert parse_cache_url("rediss://user:pw@cache.example:6380/0") == ("cache.example", 6380)
    assert parse_cache_url("redis://cache.example") == ("cache.example", 6379)


# ---------------------------------------------------------------- vpc
def test_vpc_passes_inside_a_vpc() -> None:
    result = run(ready(), "vpc")
    assert result.status == "pass" and "vpc-0lego" in result.evidence and SG_FN in result.evidence


def test_vpc_fails_outside_any_vpc() -> None:
    fake = ready()
    fake.functions[FN].no_vpc.add("2")
    result = run(fake, "vpc")
    assert result.status == "fail" and "v2 runs outside any VPC" in result.evidence


# ---------------------------------------------------------------- cache_reachable
def test_cache_reachable_passes_by_security_group_reference() -> None:
    result = run(ready(), "cache_reachable")
    assert result.status == "pass" and f"{SG_CACHE} allows {SG_FN} on port 6379" in result.evidence


def test_cache_reachable_passes_by_a_range_holding_the_functions_subnets() -> None:
    fake = ready()
    fake.add_security_group(
        SG_CACHE,
        ingress=(SecurityRule(protocol="tcp", from_port=6379, to_port=6379, cidrs=("10.0.0.0/16",)),),
    )
    result = run(fake, "cache_reachable")
    assert result.status == "pass" and "10.0.0.0/16 (the function's subnets)" in result.evidence


@pytest.mark.parametrize(
    "rule",
    [
        SecurityRule(protocol="tcp", from_port=5432, to_port=5432, groups=(SG_FN,)),  # wrong port
        SecurityRule(protocol="udp", from_port=6379, to_port=6379, groups=(SG_FN,)),  # wrong protocol
        SecurityRule(protocol="tcp", from_port=6379, to_port=6379, groups=("sg-0other",)),  # someone else
        SecurityRule(protocol="tcp", from_port=6379, to_port=6379, cidrs=("10.9.0.0/16",)),  # other subnets
    ],
)
def test_cache_reachable_fails_without_an_inbound_rule_for_the_function_on_the_port(
    rule: SecurityRule,
) -> None:
    fake = ready()
    fake.add_security_group(SG_CACHE, ingress=(rule,))
    result = run(fake, "cache_reachable")
    assert result.status == "fail" and f"lets {SG_FN} reach port 6379" in result.evidence


def test_cache_reachable_fails_when_the_functions_egress_is_closed() -> None:
    fake = ready()
    fake.add_security_group(SG_FN, egress=())
    result = run(fake, "cache_reachable")
    assert result.status == "fail" and "no outbound rule" in result.evidence


def test_cache_reachable_warns_when_no_cache_has_the_urls_host() -> None:
    fake = ready()
    fake.caches.clear()
    result = run(fake, "cache_reachable")
    assert result.status == "warn" and f"endpoint {CACHE_HOST}" in result.evidence


# ---------------------------------------------------------------- secret
def test_secret_passes_when_it_exists_and_fails_when_it_does_not() -> None:
    fake = ready()
    assert run(fake, "secret").status == "pass"
    fake.secrets.clear()
    result = run(fake, "secret")
    assert result.status == "fail" and f"secret {SECRET} is not in Secrets Manager" == result.evidence


def test_secret_warns_when_the_policy_names_none() -> None:
    assert run(ready(), "secret", settings=PreflightSettings()).status == "warn"


# ---------------------------------------------------------------- billing_alarm
def test_billing_alarm_passes_at_or_below_the_policys_threshold_and_fails_without_one() -> None:
    fake = ready()
    assert run(fake, "billing_alarm").status == "pass"
    fake.billing_alarms = [
        AlarmFact(name="cpu", state="OK", namespace="AWS/EC2", metric="CPUUtilization", threshold=50)
    ]
    result = run(fake, "billing_alarm")
    assert result.status == "fail" and "no billing alarm" in result.evidence


def test_billing_alarm_threshold_comes_from_the_policy() -> None:
    result = run(ready(), "billing_alarm", settings=PreflightSettings(billing_alarm_usd=20))
    assert result.status == "warn" and "above the policy's $20" in result.evidence


# ---------------------------------------------------------------- alarms_quiet
def test_alarms_quiet_passes_with_no_alarm_firing_and_fails_naming_the_firing_ones() -> None:
    fake = ready()
    assert run(fake, "alarms_quiet").status == "pass"
    fake.firing[FN] = ["lego-api-5xx"]
    result = run(fake, "alarms_quiet")
    assert result.status == "fail" and result.evidence == "in ALARM: lego-api-5xx"


# ---------------------------------------------------------------- permissions
def test_permissions_pass_when_allowed_and_fail_naming_the_denied_action() -> None:
    fake = ready()
    assert run(fake, "permissions").status == "pass"
    fake.denied = {"cloudwatch:PutMetricAlarm"}
    result = run(fake, "permissions")
    assert result.status == "fail" and result.evidence == "denied: cloudwatch:PutMetricAlarm"


def test_permissions_warn_when_the_simulator_is_not_allowed() -> None:
    fake = ready()
    fake.refuse["permissions"] = "SimulatePrincipalPolicy: AccessDenied"
    result = run(fake, "permissions")
    assert result.status == "warn" and "could not check: SimulatePrincipalPolicy" in result.evidence


def test_the_log_metric_filter_actions_are_simulated_only_with_a_log_group() -> None:
    fake = ready()
    fake.denied = {"logs:PutMetricFilter"}
    assert run(fake, "permissions").status == "pass"
    assert run(fake, "permissions", settings=PreflightSettings(log_group="/aws/lambda/x")).status == "fail"


# ---------------------------------------------------------------- baseline_healthy
def test_baseline_passes_inside_the_thresholds() -> None:
    result = run(ready(), "baseline_healthy")
    assert result.status == "pass" and "median p95 42 ms" in result.evidence


@pytest.mark.parametrize(
    ("figures", "words"),
    [
        ({"error_rate": 0.01}, "error rate 1.000% > 0.100%"),
        ({"p95_ms": 180}, "p95 180 ms > 100 ms"),
    ],
)
def test_baseline_fails_when_stable_already_breaks_a_threshold(figures: dict[str, float], words: str) -> None:
    fake = ready()
    fake.baseline[FN] = periods(**figures)
    result = run(fake, "baseline_healthy")
    assert result.status == "fail" and words in result.evidence


def test_baseline_thresholds_are_the_policys() -> None:
    fake = ready()
    fake.baseline[FN] = periods(p95_ms=180)
    settings = PreflightSettings(thresholds=Thresholds(p95_ms=200))
    assert run(fake, "baseline_healthy", settings=settings).status == "pass"


def test_baseline_warns_without_stable_traffic() -> None:
    fake = ready()
    fake.baseline[FN] = periods(invocations=0)
    assert run(fake, "baseline_healthy").status == "warn"


# ---------------------------------------------------------------- the registry
def test_function_always_runs_first_and_each_check_once() -> None:
    assert [c.name for c in checks_for(["secret", "function", "secret"])] == ["function", "secret"]


def test_a_check_registered_by_name_can_be_listed_in_a_policy(tmp_path: Any) -> None:
    def no_debug_logging(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
        level = (facts.target_environment or {}).get("LOG_LEVEL", "INFO")
        status = "fail" if level == "DEBUG" else "pass"
        return CheckResult(
            name="no_debug", title="No debug logging", status=status, evidence=f"LOG_LEVEL={level}"
        )

    register(Check("no_debug", "No debug logging", frozenset({"configuration"}), no_debug_logging))
    try:
        policy = tmp_path / "policy.yaml"
        policy.write_text("functions:\n  production-lego-api:\n    preflight: [no_debug]\n")
        assert load_policy(policy).for_function(FN).preflight == ("no_debug",)  # type: ignore[union-attr]
        fake = ready()
        fake.functions[FN].versions["2"]["LOG_LEVEL"] = "DEBUG"
        assert run(fake, "no_debug").status == "fail"
    finally:
        CHECKS.pop("no_debug")


def test_a_policy_naming_an_unknown_check_is_refused_with_the_known_ones(tmp_path: Any) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("functions:\n  production-lego-api:\n    preflight: [vpc, redis_ulr]\n")
    with pytest.raises(
        PolicyError,
        match=r"functions\.production-lego-api\.preflight: unknown preflight check\(s\) redis_ulr; known: .*redis_url",
    ):
        load_policy(policy)
