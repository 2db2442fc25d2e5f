"""Whole soaks, minute by minute: simulated traffic, the soak loop, and what it does through the service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.comms import internal_message
from bot.events import DecisionNeeded, SoakReport, TrafficChanged
from bot.judge import Outcome
from bot.model import State
from tests.support.traffic_sim import SoakWorld, soak_world

HOUR = 60


def started(**policy: Any) -> tuple[SoakWorld, str]:
    sw = soak_world(**policy)
    return sw, sw.world.start()


def state(sw: SoakWorld, deployment_id: str) -> State:
    return sw.deployment(deployment_id).state


# ---------------------------------------------------------------- the happy path
def test_clean_hour_soak_posts_four_reports_then_asks_for_approval() -> None:
    sw, did = started()
    start = sw.world.clock.now()

    sw.sim.run(HOUR)

    reports = sw.sim.events(SoakReport)
    assert [(r.number, r.total) for r in reports] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [r.at - start for r in reports] == [timedelta(minutes=m) for m in (15, 30, 45, 60)]
    assert [len(r.figures) for r in reports] == [3, 6, 9, 12]
    assert all(r.chart_png for r in reports)
    assert all(v.outcome is Outcome.PASS for v in reports[-1].verdicts)
    assert state(sw, did) is State.AWAITING_APPROVAL
    [approval] = sw.sim.events(DecisionNeeded)
    assert approval.why == "approval"
    assert approval.deadline == start + timedelta(hours=1, minutes=30)
    assert approval.approvers == ("S0SREONCALL",)
    # The thread reads report 4/4, then the decision.
    assert sw.world.notifier.events.index(reports[-1]) < sw.world.notifier.events.index(approval)
    assert sw.world.alias() == ("1", {"2": 0.05})


def test_awaiting_approval_keeps_quiet_until_the_deadline() -> None:
    sw, did = started()
    sw.sim.run(HOUR)
    before = len(sw.world.notifier.events)

    sw.sim.run(29)

    assert state(sw, did) is State.AWAITING_APPROVAL
    assert len(sw.world.notifier.events) == before


def test_auto_promote_policy_promotes_after_a_clean_soak() -> None:
    sw, did = started(auto_promote=True)

    sw.sim.run(HOUR - 1)
    assert state(sw, did) is State.CANARY
    sw.sim.run(1)

    assert state(sw, did) is State.PROMOTED
    assert sw.world.alias() == ("2", {})
    [promoted] = sw.sim.events(TrafficChanged)[-1:]
    assert (promoted.action, promoted.automatic, promoted.actor) == ("promoted", True, "canary-bot")
    assert len(promoted.figures) == 12


def test_three_step_schedule_steps_up_then_asks_for_approval_and_reports_restart_each_step() -> None:
    sw, did = started(steps=["5%", "25%", "50%"], soak="20m", report_every="10m")
    weights = []

    for _ in range(3):
        weights.append(sw.world.alias()[1]["2"])
        sw.sim.run(20)

    assert weights == [0.05, 0.25, 0.5]
    assert state(sw, did) is State.AWAITING_APPROVAL
    reports = sw.sim.events(SoakReport)
    assert [(r.deployment.step_index, r.number, r.total) for r in reports] == [
        (0, 1, 2),
        (0, 2, 2),
        (1, 1, 2),
        (1, 2, 2),
        (2, 1, 2),
        (2, 2, 2),
    ]
    # Each step's report covers that step's periods only.
    assert [len(r.figures) for r in reports] == [2, 4] * 3
    steps = [e for e in sw.sim.events(TrafficChanged) if e.action == "next_step"]
    assert [e.alias_after.weights for e in steps] == [{"2": 0.25}, {"2": 0.5}]
    assert all(e.automatic and e.reason and e.reason.startswith("soak passed") for e in steps)


# ---------------------------------------------------------------- breaches
def test_error_rate_breach_rolls_back_after_two_failing_periods_not_one() -> None:
    sw, did = started()
    sw.sim.run(20)
    sw.sim.behave("2", error_rate=0.025)

    sw.sim.run(5)  # 14:20-14:25 fails: one period is not enough
    assert state(sw, did) is State.CANARY
    assert sw.deployment(did).breach_streak == 1
    assert sw.deployment(did).last_verdict == "🔴 error rate 2.5% > 0.1%"

    sw.sim.run(5)  # 14:25-14:30 fails too
    assert state(sw, did) is State.ROLLED_BACK
    assert sw.world.alias() == ("1", {})
    [rolled_back] = [e for e in sw.sim.events(TrafficChanged) if e.action == "rolled_back"]
    assert rolled_back.automatic
    assert rolled_back.detected_at == sw.world.clock.now()
    assert rolled_back.reason == "error rate 2.5% > 0.1% for 2 periods"
    assert rolled_back.alias_before is not None and rolled_back.alias_before.weights == {"2": 0.05}


def test_after_a_rollback_the_canary_gets_no_traffic_and_nothing_more_is_said() -> None:
    sw, did = started()
    sw.sim.behave("2", error_rate=0.05)
    sw.sim.run(10)
    assert state(sw, did) is State.ROLLED_BACK
    said = len(sw.world.notifier.events)

    sw.sim.run(30)

    assert len(sw.world.notifier.events) == said
    assert sw.world.traffic.routing_writes[-1].weights == {}


@pytest.mark.parametrize(
    ("change", "named", "cause", "said"),
    [
        (
            {"p95_ms": 180.0},
            "p95 180 ms > 100 ms",
            ("latency", "p95_ms"),
            "P95 latency above 100 ms (180 ms)",
        ),
        (
            {"cache_hit_rate": 0.6},
            "cache hit rate 60% < 80%",
            ("cache", "cache_hit_rate"),
            "Cache hit rate below 80% (60%)",
        ),
        (
            {"cache_miss_p95_ms": 450.0},
            "cache-miss p95 450 ms > 300 ms",
            ("cache", "cache_miss_p95_ms"),
            "Cache-miss latency above 300 ms (450 ms)",
        ),
        (
            {"error_rate": 0.025},
            "error rate 2.5% > 0.1%",
            ("error_rate", "error_rate"),
            "Error rate exceeded 0.1% (2.5%)",
        ),
    ],
)
def test_each_threshold_of_the_table_rolls_back_and_is_named_from_the_judges_typed_cause(
    change: dict[str, float], named: str, cause: tuple[str, str], said: str
) -> None:
    sw, did = started()
    sw.sim.behave("2", **change)

    sw.sim.run(10)

    d = sw.deployment(did)
    assert d.state is State.ROLLED_BACK
    assert d.reason == f"{named} for 2 periods"
    assert d.cause is not None and (d.cause.kind, d.cause.metric, d.cause.periods) == (*cause, 2)
    policy = sw.world.service.policy_for(d.function)
    text = internal_message(d, reason=d.reason, service_name=policy.service_name, now=sw.world.clock.now())
    assert f"- Reason: {said} for 2 consecutive periods" in text


def test_on_breach_alert_posts_one_breach_alert_and_leaves_the_alias() -> None:
    sw, did = started(on_breach="alert")
    sw.sim.run(20)
    sw.sim.behave("2", error_rate=0.025)

    sw.sim.run(25)  # five failing periods: the streak reaches 2, then keeps growing

    alerts = [e for e in sw.sim.events(DecisionNeeded) if e.why == "breach_alert"]
    assert len(alerts) == 1
    assert alerts[0].reason == "error rate 2.5% > 0.1% for 2 periods"
    assert alerts[0].at == sw.world.clock.now() - timedelta(minutes=15)
    assert state(sw, did) is State.CANARY
    assert sw.world.alias() == ("1", {"2": 0.05})
    assert sw.deployment(did).breach_streak == 5


def test_a_new_breach_streak_after_recovery_alerts_again() -> None:
    sw, _ = started(on_breach="alert")
    sw.sim.behave("2", error_rate=0.025)
    sw.sim.run(10)
    sw.sim.behave("2", error_rate=0.0)
    sw.sim.run(5)
    sw.sim.behave("2", error_rate=0.025)
    sw.sim.run(10)

    alerts = [e for e in sw.sim.events(DecisionNeeded) if e.why == "breach_alert"]
    assert len(alerts) == 2


def test_a_breach_at_the_last_period_of_the_soak_is_never_approved() -> None:
    sw, did = started()
    sw.sim.run(HOUR - 5)
    sw.sim.behave("2", error_rate=0.025)

    sw.sim.run(5)

    assert state(sw, did) is State.HELD
    [inconclusive] = sw.sim.events(DecisionNeeded)
    assert inconclusive.why == "inconclusive"
    assert "1 failed" in inconclusive.reason


# ---------------------------------------------------------------- too little evidence
def test_too_little_canary_traffic_holds_as_inconclusive_and_never_promotes() -> None:
    # 5% of 600 a minute = 150 canary invocations per 5-minute period: below min_invocations (200).
    sw, did = started(auto_promote=True)
    sw.sim.set_volume(600)

    sw.sim.run(HOUR + 30)

    assert state(sw, did) is State.HELD
    assert all(e.action != "promoted" for e in sw.sim.events(TrafficChanged))
    [inconclusive] = sw.sim.events(DecisionNeeded)
    assert inconclusive.why == "inconclusive"
    assert "0 of 12 periods passed (10 needed)" in inconclusive.reason
    assert sw.deployment(did).last_verdict == "⚠️ 150 invocations < 200"
    assert sw.world.alias() == ("1", {"2": 0.05})


# ---------------------------------------------------------------- nobody decides
def test_approval_timeout_rolls_back_by_default_and_is_announced() -> None:
    sw, did = started()
    sw.sim.run(HOUR + 29)
    assert state(sw, did) is State.AWAITING_APPROVAL

    sw.sim.run(1)

    assert state(sw, did) is State.ROLLED_BACK
    assert sw.world.alias() == ("1", {})
    timeout = sw.sim.events(DecisionNeeded)[-1]
    assert timeout.why == "approval_timeout"
    assert timeout.reason == "no approval by 15:30 UTC; policy: rollback"
    assert sw.sim.events(TrafficChanged)[-1].action == "rolled_back"


def test_approval_timeout_with_hold_policy_holds_and_keeps_traffic() -> None:
    sw, did = started(on_approval_timeout="hold")

    sw.sim.run(HOUR + 45)

    assert state(sw, did) is State.HELD
    assert sw.world.alias() == ("1", {"2": 0.05})
    timeouts = [e for e in sw.sim.events(DecisionNeeded) if e.why == "approval_timeout"]
    assert len(timeouts) == 1


# ---------------------------------------------------------------- the statistical check
@pytest.mark.parametrize("statistical", [True, False])
def test_statistical_check_rolls_back_a_canary_slower_than_stable_within_thresholds(
    statistical: bool,
) -> None:
    # p95 80 ms is inside the 100 ms threshold, but every minute it is twice stable's.
    sw, did = started(
        period="1m",
        min_invocations=50,
        statistical={"enabled": statistical, "confidence": 0.98},
    )
    sw.sim.behave("1", p95_ms=40.0)
    sw.sim.behave("2", p95_ms=80.0)

    sw.sim.run(10)

    if statistical:
        # 5 points are needed before the test says anything, then 2 failing periods in a row.
        assert state(sw, did) is State.ROLLED_BACK
        reason = sw.deployment(did).reason or ""
        assert reason.startswith("p95 vs stable (Mann-Whitney) 80 ms > 40 ms")
        assert reason.endswith("for 2 periods")
        assert sw.deployment(did).ended_at == sw.world.clock.now() - timedelta(minutes=4)
    else:
        assert state(sw, did) is State.CANARY


def test_statistical_check_passes_a_canary_no_worse_than_stable() -> None:
    sw, did = started(period="1m", min_invocations=50, soak="15m", statistical={"enabled": True})

    sw.sim.run(15)

    assert state(sw, did) is State.AWAITING_APPROVAL


def test_a_short_soak_started_between_period_boundaries_can_still_pass() -> None:
    sw = soak_world(soak="20m")
    sw.sim.run(3, tick=False)
    did = sw.world.start()  # 14:03

    sw.sim.run(25)

    assert state(sw, did) is State.AWAITING_APPROVAL
