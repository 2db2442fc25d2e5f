"""decide(): from a deployment, its judged periods and the policy, to what happens next."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from bot import canary
from bot.config import FunctionPolicy
from bot.judge import DecisionKind, Outcome, PeriodVerdict, decide, judge_period, required_passes
from bot.model import Deployment, State
from tests.support.canary_core import PERIOD, T0, in_state, period, started, version

HOUR = timedelta(hours=1)
SOAK_END = T0 + HOUR

# One character per 5-minute period: P healthy, F error-rate breach, N too little traffic.
FIGURES = {
    "P": version("42"),
    "F": version("42", invocations=1000, errors=25),
    "N": version("42", invocations=40),
}


def judged(start: datetime, pattern: str, policy: FunctionPolicy | None = None) -> list[PeriodVerdict]:
    """Real verdicts from judge_period, one per character of `pattern`, back to back from `start`."""
    policy = policy or FunctionPolicy()
    return [
        judge_period(
            period(start + i * PERIOD, canary=FIGURES[ch]),
            policy.thresholds,
            min_invocations=policy.min_invocations,
        )
        for i, ch in enumerate(pattern)
    ]


def policy(**overrides: Any) -> FunctionPolicy:
    return FunctionPolicy(**overrides)


# ---------------------------------------------------------------- a clean soak
def test_clean_one_hour_soak_asks_for_approval() -> None:
    decision = decide(started(), judged(T0, "P" * 12), policy(), now=SOAK_END)
    assert decision.kind is DecisionKind.AWAIT_APPROVAL
    assert decision.reason == "soak passed: 12/12 periods within thresholds at 5% for 1h"
    assert (decision.breach_streak, decision.failing, decision.action) == (0, [], None)


def test_soak_not_over_yet_continues() -> None:
    now = SOAK_END - timedelta(minutes=5)
    decision = decide(started(), judged(T0, "P" * 11), policy(), now=now)
    assert decision.kind is DecisionKind.CONTINUE
    assert decision.reason == "soaking 55m of 1h; 11/11 periods passed"


def test_auto_promote_promotes_after_the_last_step() -> None:
    decision = decide(started(), judged(T0, "P" * 12), policy(auto_promote=True), now=SOAK_END)
    assert decision.kind is DecisionKind.PROMOTE


def test_three_step_schedule_passes_step_by_step_then_asks_for_approval() -> None:
    rules = policy(steps=(0.05, 0.25, 0.5))
    d = started(steps=rules.steps)
    history: list[PeriodVerdict] = []
    for step in range(3):
        start = d.step_started_at
        assert start is not None
        history += judged(start, "P" * 12)
        decision = decide(d, history, rules, now=start + HOUR)
        if step < 2:
            assert decision.kind is DecisionKind.NEXT_STEP
            d = canary.next_step(
                d, now=start + HOUR, actor="canary-bot", alias_revision=f"r{step}"
            ).deployment
    assert decision.kind is DecisionKind.AWAIT_APPROVAL
    assert d.weight == 0.5


def test_periods_of_an_earlier_step_are_ignored() -> None:
    d = started(steps=(0.05, 0.25))
    second = canary.next_step(d, now=SOAK_END, actor="canary-bot", alias_revision="r").deployment
    verdicts = judged(T0, "F" * 12) + judged(SOAK_END, "P" * 12)
    decision = decide(second, verdicts, policy(), now=SOAK_END + HOUR)
    assert (decision.kind, decision.breach_streak) == (DecisionKind.AWAIT_APPROVAL, 0)


def test_period_not_yet_complete_is_ignored() -> None:
    # The failing period [55m, 60m) has not ended at 58m, so only one failure is complete.
    decision = decide(started(), judged(T0, "P" * 10 + "FF"), policy(), now=T0 + timedelta(minutes=58))
    assert (decision.kind, decision.breach_streak) == (DecisionKind.CONTINUE, 1)


# ---------------------------------------------------------------- breaches
def test_single_failing_period_continues_and_counts_the_streak() -> None:
    decision = decide(started(), judged(T0, "PPF"), policy(), now=T0 + 3 * PERIOD)
    assert (decision.kind, decision.breach_streak) == (DecisionKind.CONTINUE, 1)
    assert [m.metric for m in decision.failing] == ["error_rate"]


def test_two_failing_periods_roll_back() -> None:
    decision = decide(started(), judged(T0, "PPFF"), policy(), now=T0 + 4 * PERIOD)
    assert decision.kind is DecisionKind.ROLLBACK
    assert decision.reason == "error rate 2.5% > 0.1% for 2 periods"
    assert decision.breach_streak == 2
    assert [(m.metric, m.outcome) for m in decision.failing] == [("error_rate", Outcome.FAIL)]


def test_failures_that_are_not_consecutive_do_not_roll_back() -> None:
    decision = decide(started(), judged(T0, "FPF"), policy(), now=T0 + 3 * PERIOD)
    assert (decision.kind, decision.breach_streak) == (DecisionKind.CONTINUE, 1)


def test_evaluation_periods_sets_the_streak_needed() -> None:
    rules = policy(evaluation_periods=3)
    assert decide(started(), judged(T0, "FF"), rules, now=T0 + 2 * PERIOD).kind is DecisionKind.CONTINUE
    assert decide(started(), judged(T0, "FFF"), rules, now=T0 + 3 * PERIOD).kind is DecisionKind.ROLLBACK


def test_on_breach_alert_alerts_instead_of_rolling_back() -> None:
    decision = decide(started(), judged(T0, "FF"), policy(on_breach="alert"), now=T0 + 2 * PERIOD)
    assert (decision.kind, decision.reason) == (DecisionKind.ALERT, "error rate 2.5% > 0.1% for 2 periods")


def test_breach_while_awaiting_approval_rolls_back() -> None:
    d = canary.await_approval(started(), now=SOAK_END, deadline=SOAK_END + timedelta(minutes=30)).deployment
    verdicts = judged(T0, "P" * 12 + "FF")
    decision = decide(d, verdicts, policy(), now=SOAK_END + 2 * PERIOD)
    assert decision.kind is DecisionKind.ROLLBACK


def test_breach_while_held_only_alerts_because_a_human_holds_the_controls() -> None:
    held = canary.hold(started(), now=T0 + PERIOD, actor="U_SRE", reason="looking").deployment
    decision = decide(held, judged(T0, "PFF"), policy(on_breach="rollback"), now=T0 + 3 * PERIOD)
    assert (decision.kind, decision.breach_streak) == (DecisionKind.ALERT, 2)


def test_breach_outranks_end_of_soak() -> None:
    decision = decide(started(), judged(T0, "P" * 10 + "FF"), policy(auto_promote=True), now=SOAK_END)
    assert decision.kind is DecisionKind.ROLLBACK


# ---------------------------------------------------------------- too little evidence
def test_low_traffic_soak_is_inconclusive_never_promoted() -> None:
    decision = decide(started(), judged(T0, "PPP" + "N" * 9), policy(auto_promote=True), now=SOAK_END)
    assert decision.kind is DecisionKind.INCONCLUSIVE
    assert (
        decision.reason
        == "soak inconclusive (too little evidence): 3 of 12 periods passed (10 needed), 9 without enough data, "
        "0 failed"
    )


def test_soak_without_any_period_is_inconclusive() -> None:
    assert decide(started(), [], policy(auto_promote=True), now=SOAK_END).kind is DecisionKind.INCONCLUSIVE


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("P" * 10 + "NN", DecisionKind.PROMOTE), ("P" * 9 + "NNN", DecisionKind.INCONCLUSIVE)],
)
def test_soak_needs_eighty_percent_of_its_periods_to_pass(pattern: str, expected: DecisionKind) -> None:
    decision = decide(started(), judged(T0, pattern), policy(auto_promote=True), now=SOAK_END)
    assert decision.kind is expected


def test_an_isolated_failing_period_is_tolerated_and_named_in_the_reason() -> None:
    decision = decide(started(), judged(T0, "P" * 5 + "F" + "P" * 6), policy(auto_promote=True), now=SOAK_END)
    assert decision.kind is DecisionKind.PROMOTE
    assert "1 isolated failing period" in decision.reason


def test_a_soak_ending_on_a_failing_period_is_inconclusive() -> None:
    decision = decide(started(), judged(T0, "P" * 11 + "F"), policy(auto_promote=True), now=SOAK_END)
    assert decision.kind is DecisionKind.INCONCLUSIVE
    assert "the last period failed" in decision.reason


def test_a_breach_that_only_alerted_makes_the_soak_inconclusive() -> None:
    pattern = "P" * 4 + "FF" + "P" * 6
    decision = decide(
        started(), judged(T0, pattern), policy(auto_promote=True, on_breach="alert"), now=SOAK_END
    )
    assert decision.kind is DecisionKind.INCONCLUSIVE
    assert "a breach" in decision.reason


@pytest.mark.parametrize(
    ("soak", "evaluation_periods", "needed"),
    [
        (HOUR, 2, 10),  # 12 periods: 9.6 -> 10
        (timedelta(minutes=10), 2, 2),  # 2 periods: 1.6 -> 2, the breach window wins
        (timedelta(minutes=10), 3, 3),
        (timedelta(minutes=12), 2, 2),  # 2 whole periods
        (timedelta(minutes=175), 2, 28),  # 35 periods: exactly 28, no float drift up to 29
    ],
)
def test_required_passes(soak: timedelta, evaluation_periods: int, needed: int) -> None:
    assert required_passes(started(soak=soak), policy(evaluation_periods=evaluation_periods)) == needed


# ---------------------------------------------------------------- approval
@pytest.mark.parametrize("action", ["rollback", "hold"])
def test_approval_timeout_follows_the_policy(action: str) -> None:
    deadline = SOAK_END + timedelta(minutes=30)
    d = canary.await_approval(started(), now=SOAK_END, deadline=deadline).deployment
    decision = decide(d, judged(T0, "P" * 18), policy(on_approval_timeout=action), now=deadline)
    assert (decision.kind, decision.action) == (DecisionKind.APPROVAL_TIMEOUT, action)
    assert decision.reason == f"no approval by 15:30 UTC; policy: {action}"


def test_waiting_for_approval_before_the_deadline_continues() -> None:
    deadline = SOAK_END + timedelta(minutes=30)
    d = canary.await_approval(started(), now=SOAK_END, deadline=deadline).deployment
    decision = decide(d, judged(T0, "P" * 17), policy(), now=deadline - timedelta(seconds=1))
    assert decision.kind is DecisionKind.CONTINUE


# ---------------------------------------------------------------- held and idle states
def test_held_deployment_does_not_advance_when_its_soak_is_over() -> None:
    held = canary.hold(started(), now=T0, actor="U_SRE", reason="looking").deployment
    decision = decide(held, judged(T0, "P" * 12), policy(auto_promote=True), now=SOAK_END)
    assert decision.kind is DecisionKind.CONTINUE


def test_time_held_is_not_counted_as_soak() -> None:
    held = canary.hold(started(), now=T0 + timedelta(minutes=20), actor="U", reason="x").deployment
    resumed = canary.resume(held, now=T0 + timedelta(minutes=40), actor="U").deployment
    rules = policy(auto_promote=True)
    assert decide(resumed, judged(T0, "P" * 12), rules, now=SOAK_END).kind is DecisionKind.CONTINUE
    assert decide(resumed, judged(T0, "P" * 16), rules, now=SOAK_END + 20 * timedelta(minutes=1)).kind is (
        DecisionKind.PROMOTE
    )


@pytest.mark.parametrize(
    "state", [State.PLANNED, State.ROLLING_BACK, State.PROMOTED, State.ROLLED_BACK, State.CANCELLED]
)
def test_states_without_a_soak_have_nothing_to_decide(state: State) -> None:
    d: Deployment = in_state(state)
    decision = decide(d, judged(T0, "FFF"), policy(), now=SOAK_END)
    assert decision.kind is DecisionKind.CONTINUE
