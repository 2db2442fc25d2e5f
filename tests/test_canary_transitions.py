"""Table-driven tests of every canary transition from every state, and of what each one changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot import canary
from bot.canary import IllegalTransition, InvalidPlan, Transition
from bot.model import Deployment, State
from bot.ports import CanaryError
from tests.support.canary_core import T0, in_state, planned, started

LATER = T0 + timedelta(minutes=10)

# Each transition called with ordinary arguments, ten minutes after the deployment reached its state.
CALLS: dict[str, Callable[[Deployment], Transition]] = {
    "start": lambda d: canary.start(d, now=LATER, actor="U_MARIA", alias_revision="rev-9"),
    "cancel": lambda d: canary.cancel(d, now=LATER, actor="U_MARIA", reason="changed my mind"),
    "set_weight": lambda d: canary.set_weight(
        d, weight=0.1, now=LATER, actor="U_SRE", alias_revision="rev-9"
    ),
    "next_step": lambda d: canary.next_step(d, now=LATER, actor="canary-bot", alias_revision="rev-9"),
    "await_approval": lambda d: canary.await_approval(d, now=LATER, deadline=LATER + timedelta(minutes=30)),
    "extend": lambda d: canary.extend(d, by=timedelta(minutes=30), now=LATER, actor="U_SRE"),
    "hold": lambda d: canary.hold(d, now=LATER, actor="U_SRE", reason="investigating"),
    "resume": lambda d: canary.resume(d, now=LATER, actor="U_SRE"),
    "promote": lambda d: canary.promote(d, now=LATER, actor="U_SRE", alias_revision="rev-9"),
    "begin_rollback": lambda d: canary.begin_rollback(d, now=LATER, actor="U_SRE", reason="p95 too high"),
    "finish_rollback": lambda d: canary.finish_rollback(d, now=LATER, actor="U_SRE", alias_revision="rev-9"),
    "revert": lambda d: canary.revert(
        d, now=LATER, actor="U_SRE", reason="p95 regression", alias_revision="rev-9"
    ),
    "fallback": lambda d: canary.fallback(d, now=LATER, actor="U_SRE", version="9", alias_revision="rev-9"),
}

# (transition, source) -> target. Every pair not listed must raise IllegalTransition.
# in_state() builds HELD from CANARY, so resume goes back to CANARY.
EXPECTED: dict[tuple[str, State], State] = {
    ("start", State.PLANNED): State.CANARY,
    ("cancel", State.PLANNED): State.CANCELLED,
    ("set_weight", State.CANARY): State.CANARY,
    ("set_weight", State.AWAITING_APPROVAL): State.CANARY,
    ("set_weight", State.HELD): State.HELD,
    ("next_step", State.CANARY): State.CANARY,
    ("await_approval", State.CANARY): State.AWAITING_APPROVAL,
    ("extend", State.CANARY): State.CANARY,
    ("extend", State.AWAITING_APPROVAL): State.CANARY,
    ("extend", State.HELD): State.HELD,
    ("hold", State.CANARY): State.HELD,
    ("hold", State.AWAITING_APPROVAL): State.HELD,
    ("resume", State.HELD): State.CANARY,
    ("promote", State.CANARY): State.PROMOTED,
    ("promote", State.AWAITING_APPROVAL): State.PROMOTED,
    ("promote", State.HELD): State.PROMOTED,
    ("begin_rollback", State.CANARY): State.ROLLING_BACK,
    ("begin_rollback", State.AWAITING_APPROVAL): State.ROLLING_BACK,
    ("begin_rollback", State.HELD): State.ROLLING_BACK,
    ("finish_rollback", State.ROLLING_BACK): State.ROLLED_BACK,
    ("revert", State.PROMOTED): State.ROLLED_BACK,
    ("fallback", State.PLANNED): State.PROMOTED,
}

ALL_PAIRS = [(action, state) for action in CALLS for state in State]


def test_table_covers_every_transition_in_legal() -> None:
    assert set(CALLS) | {"note_verdict"} == set(canary.LEGAL)
    assert {(a, s) for a, s in EXPECTED} == {(a, s) for a in CALLS for s in canary.LEGAL[a]}


@pytest.mark.parametrize(("action", "source"), [p for p in ALL_PAIRS if p in EXPECTED])
def test_legal_transition_reaches_expected_state_with_one_matching_audit(action: str, source: State) -> None:
    before = in_state(source)
    assert canary.can(before, action)

    result = CALLS[action](before)

    assert result.deployment.state is EXPECTED[(action, source)]
    assert result.deployment.updated_at == LATER
    assert result.deployment.revision == before.revision
    audit = result.audit
    assert (audit.from_state, audit.to_state) == (source, result.deployment.state)
    assert (audit.deployment_id, audit.action, audit.at, audit.phase) == (before.id, action, LATER, "event")


@pytest.mark.parametrize(("action", "source"), [p for p in ALL_PAIRS if p not in EXPECTED])
def test_illegal_transition_raises_and_names_the_state(action: str, source: State) -> None:
    before = in_state(source)
    assert not canary.can(before, action)

    with pytest.raises(IllegalTransition) as raised:
        CALLS[action](before)

    said = "soaking" if source is State.CANARY else source.value.replace("_", " ")
    assert f"deployment {before.id} is {said}" in str(raised.value)
    assert isinstance(raised.value, CanaryError)


def test_illegal_message_reads_like_a_sentence() -> None:
    with pytest.raises(
        IllegalTransition, match=r"^cannot promote: deployment d-1 is rolled back \(it has ended\)$"
    ):
        CALLS["promote"](in_state(State.ROLLED_BACK))


def test_revert_ends_the_watch_and_records_why() -> None:
    promoted = in_state(State.PROMOTED).model_copy(update={"watch_until": LATER + timedelta(hours=24)})

    reverted = CALLS["revert"](promoted).deployment

    assert (reverted.watch_until, reverted.reason, reverted.ended_by) == (None, "p95 regression", "U_SRE")
    assert reverted.alias_revision == "rev-9"


def test_fallback_records_the_published_version_as_promoted() -> None:
    d = CALLS["fallback"](in_state(State.PLANNED)).deployment
    assert (d.canary_version, d.weight, d.watch_until, d.alias_revision) == ("9", 1.0, None, "rev-9")


# ---------------------------------------------------------------- plan
def test_plan_starts_planned_at_the_first_step_weight() -> None:
    result = canary.plan(
        id="d-7",
        function="production-lego-api",
        alias="production",
        stable_version="41",
        canary_version="42",
        steps=[0.05, 0.25, 0.5],
        soak=timedelta(hours=1),
        actor="U_MARIA",
        now=T0,
        changes={"REDIS_URL": "redis://cache:6379", "OLD_FLAG": None},
        channel="C_DEPLOYS",
    )
    d = result.deployment
    assert (d.state, d.weight, d.steps, d.step_index) == (State.PLANNED, 0.05, (0.05, 0.25, 0.5), 0)
    assert (d.created_by, d.created_at, d.updated_at, d.channel) == ("U_MARIA", T0, T0, "C_DEPLOYS")
    assert d.changes == {"REDIS_URL": "redis://cache:6379", "OLD_FLAG": None}
    assert (result.audit.action, result.audit.from_state, result.audit.to_state) == (
        "plan",
        None,
        State.PLANNED,
    )


@pytest.mark.parametrize(
    ("stable", "canary_version", "steps", "soak", "complaint"),
    [
        ("41", "41", [0.05], timedelta(hours=1), "is the stable version"),
        ("41", "42", [], timedelta(hours=1), "at least one step"),
        ("41", "42", [0.0], timedelta(hours=1), "strictly between"),
        ("41", "42", [1.0], timedelta(hours=1), "strictly between"),
        ("41", "42", [0.05, 1.5], timedelta(hours=1), "strictly between"),
        ("41", "42", [float("nan")], timedelta(hours=1), "strictly between"),
        ("41", "42", [0.25, 0.05], timedelta(hours=1), "must rise"),
        ("41", "42", [0.05, 0.05], timedelta(hours=1), "must rise"),
        ("41", "42", [0.05], timedelta(0), "longer than zero"),
        ("41", "42", [0.05], timedelta(minutes=-5), "longer than zero"),
    ],
)
def test_plan_rejects_unusable_plans(
    stable: str, canary_version: str, steps: list[float], soak: timedelta, complaint: str
) -> None:
    with pytest.raises(InvalidPlan, match=complaint):
        canary.plan(
            id="d-1",
            function="f",
            alias="production",
            stable_version=stable,
            canary_version=canary_version,
            steps=steps,
            soak=soak,
            actor="U_MARIA",
            now=T0,
        )


# ---------------------------------------------------------------- start / steps
def test_start_routes_first_step_and_opens_its_soak_window() -> None:
    d = canary.start(
        planned(steps=(0.05, 0.25)), now=LATER, actor="U_MARIA", alias_revision="rev-2"
    ).deployment
    assert (d.step_index, d.weight, d.alias_revision) == (0, 0.05, "rev-2")
    assert (d.step_started_at, d.soak_ends_at) == (LATER, LATER + timedelta(hours=1))


def test_next_step_moves_to_next_weight_with_fresh_soak_and_clean_streak() -> None:
    d = canary.note_verdict(started(steps=(0.05, 0.25, 0.5)), now=T0, verdict="fail", breach_streak=1)
    moved = canary.next_step(d, now=LATER, actor="canary-bot", alias_revision="rev-3").deployment
    assert (moved.step_index, moved.weight, moved.breach_streak, moved.alias_revision) == (
        1,
        0.25,
        0,
        "rev-3",
    )
    assert (moved.step_started_at, moved.soak_ends_at) == (LATER, LATER + timedelta(hours=1))


def test_next_step_on_last_step_is_illegal() -> None:
    d = started(steps=(0.05,))
    assert not canary.can(d, "next_step")
    with pytest.raises(IllegalTransition, match="last step"):
        canary.next_step(d, now=LATER, actor="canary-bot", alias_revision="rev-3")


def test_can_rejects_unknown_action() -> None:
    with pytest.raises(ValueError, match="unknown transition"):
        canary.can(started(), "teleport")


# ---------------------------------------------------------------- weight
def test_set_weight_from_awaiting_approval_goes_back_to_soaking_from_now() -> None:
    waiting = in_state(State.AWAITING_APPROVAL)
    d = canary.set_weight(waiting, weight=0.5, now=LATER, actor="U_SRE", alias_revision="rev-4").deployment
    assert (d.state, d.weight, d.approval_deadline, d.alias_revision) == (State.CANARY, 0.5, None, "rev-4")
    assert (d.step_started_at, d.soak_ends_at) == (LATER, LATER + d.soak)


def test_set_weight_while_held_stays_held_and_resumes_to_soaking() -> None:
    held = canary.hold(in_state(State.AWAITING_APPROVAL), now=T0, actor="U_SRE", reason="check").deployment
    reweighted = canary.set_weight(held, weight=0.1, now=LATER, actor="U_SRE", alias_revision="r").deployment
    assert (reweighted.state, reweighted.weight, reweighted.held_from) == (State.HELD, 0.1, State.CANARY)

    resumed = canary.resume(reweighted, now=LATER + timedelta(minutes=20), actor="U_SRE").deployment
    assert resumed.state is State.CANARY
    assert resumed.soak_ends_at == LATER + timedelta(minutes=20) + resumed.soak


@pytest.mark.parametrize("weight", [0.0, 1.0, -0.1, 1.2, float("nan")])
def test_set_weight_outside_open_interval_is_invalid(weight: float) -> None:
    with pytest.raises(InvalidPlan, match="strictly between"):
        canary.set_weight(started(), weight=weight, now=LATER, actor="U_SRE", alias_revision="r")


def test_set_weight_audit_records_old_and_new_weight() -> None:
    audit = canary.set_weight(started(), weight=0.2, now=LATER, actor="U_SRE", alias_revision="r").audit
    assert audit.detail == {"weight_before": 0.05, "weight_after": 0.2}


# ---------------------------------------------------------------- extend
def test_extend_while_soaking_pushes_the_soak_end() -> None:
    d = started()
    extended = canary.extend(d, by=timedelta(minutes=30), now=LATER, actor="U_SRE").deployment
    assert extended.soak_ends_at == d.soak_ends_at + timedelta(minutes=30)  # type: ignore[operator]


def test_extend_while_awaiting_approval_soaks_again_for_the_extension() -> None:
    d = canary.extend(
        in_state(State.AWAITING_APPROVAL), by=timedelta(minutes=30), now=LATER, actor="U"
    ).deployment
    assert (d.state, d.soak_ends_at, d.approval_deadline) == (
        State.CANARY,
        LATER + timedelta(minutes=30),
        None,
    )


def test_extend_while_held_moves_the_clocks_and_stays_held() -> None:
    held = canary.hold(in_state(State.AWAITING_APPROVAL), now=T0, actor="U_SRE", reason="check").deployment
    d = canary.extend(held, by=timedelta(minutes=15), now=LATER, actor="U_SRE").deployment
    assert d.state is State.HELD
    assert d.soak_ends_at == held.soak_ends_at + timedelta(minutes=15)  # type: ignore[operator]
    assert d.approval_deadline == held.approval_deadline + timedelta(minutes=15)  # type: ignore[operator]


@pytest.mark.parametrize("by", [timedelta(0), timedelta(minutes=-1)])
def test_extend_by_nothing_or_negative_is_invalid(by: timedelta) -> None:
    with pytest.raises(InvalidPlan, match="positive"):
        canary.extend(started(), by=by, now=LATER, actor="U_SRE")


# ---------------------------------------------------------------- hold / resume
def test_hold_remembers_where_it_came_from_and_why() -> None:
    d = canary.hold(in_state(State.AWAITING_APPROVAL), now=LATER, actor="U_SRE", reason="drift").deployment
    assert (d.state, d.held_from, d.held_at, d.reason) == (
        State.HELD,
        State.AWAITING_APPROVAL,
        LATER,
        "drift",
    )


def test_resume_adds_time_held_to_soak_so_a_hold_eats_no_soak() -> None:
    d = started()  # soak ends T0 + 1h
    held = canary.hold(d, now=T0 + timedelta(minutes=20), actor="U_SRE", reason="look").deployment
    resumed = canary.resume(held, now=T0 + timedelta(minutes=50), actor="U_SRE")
    assert resumed.deployment.state is State.CANARY
    assert resumed.deployment.soak_ends_at == T0 + timedelta(minutes=90)
    assert (resumed.deployment.held_from, resumed.deployment.held_at) == (None, None)
    assert resumed.audit.detail == {"held_seconds": 1800.0}


def test_resume_to_awaiting_approval_moves_the_deadline_by_time_held() -> None:
    waiting = canary.await_approval(started(), now=T0, deadline=T0 + timedelta(minutes=30)).deployment
    held = canary.hold(waiting, now=T0 + timedelta(minutes=10), actor="U_SRE", reason="x").deployment
    resumed = canary.resume(held, now=T0 + timedelta(minutes=25), actor="U_SRE").deployment
    assert (resumed.state, resumed.approval_deadline) == (State.AWAITING_APPROVAL, T0 + timedelta(minutes=45))


# ---------------------------------------------------------------- endings
def test_await_approval_is_the_bots_act_with_a_deadline() -> None:
    result = canary.await_approval(started(), now=LATER, deadline=LATER + timedelta(minutes=30))
    assert result.deployment.approval_deadline == LATER + timedelta(minutes=30)
    assert result.audit.actor == canary.BOT_ACTOR == "canary-bot"


def test_promote_records_who_ended_it_and_when() -> None:
    d = canary.promote(in_state(State.HELD), now=LATER, actor="U_SRE", alias_revision="rev-5").deployment
    assert (d.ended_by, d.ended_at, d.alias_revision, d.held_from) == ("U_SRE", LATER, "rev-5", None)
    assert canary.expected_routing(d) == ("42", {})


def test_rollback_reverts_alias_to_stable_in_two_steps() -> None:
    rolling = canary.begin_rollback(started(), now=LATER, actor="canary-bot", reason="errors 2.5%").deployment
    assert (rolling.state, rolling.reason) == (State.ROLLING_BACK, "errors 2.5%")
    assert canary.expected_routing(rolling) == ("41", {"42": 0.05})  # still routed until the write lands

    done = canary.finish_rollback(
        rolling,
        now=LATER,
        actor="canary-bot",
        alias_revision="rev-6",
        alias_before={"version": "41", "weights": {"42": 0.05}},
        alias_after={"version": "41", "weights": {}},
    )
    assert (done.deployment.state, done.deployment.ended_by, done.deployment.ended_at) == (
        State.ROLLED_BACK,
        "canary-bot",
        LATER,
    )
    assert canary.expected_routing(done.deployment) == ("41", {})
    assert done.audit.reason == "errors 2.5%"
    assert done.audit.alias_after == {"version": "41", "weights": {}}


def test_cancel_ends_an_unconfirmed_plan() -> None:
    d = canary.cancel(planned(), now=LATER, actor="U_MARIA", reason="expired").deployment
    assert (d.state, d.ended_by, d.ended_at, d.reason) == (State.CANCELLED, "U_MARIA", LATER, "expired")


def test_audit_alias_snapshots_are_none_unless_given() -> None:
    audit = canary.promote(started(), now=LATER, actor="U_SRE", alias_revision="r").audit
    assert (audit.alias_before, audit.alias_after) == (None, None)


# ---------------------------------------------------------------- verdicts
def test_note_verdict_updates_streak_without_changing_state() -> None:
    d = started()
    noted = canary.note_verdict(d, now=LATER, verdict="fail", breach_streak=1)
    assert (noted.state, noted.last_verdict, noted.breach_streak, noted.updated_at) == (
        State.CANARY,
        "fail",
        1,
        LATER,
    )


def test_note_verdict_after_the_end_is_illegal() -> None:
    with pytest.raises(IllegalTransition):
        canary.note_verdict(in_state(State.PROMOTED), now=LATER, verdict="pass", breach_streak=0)


def test_a_transition_refuses_a_misspelt_field_or_an_impossible_weight() -> None:
    from bot.canary import _update

    d = in_state(State.CANARY)
    with pytest.raises(TypeError, match="no such Deployment field: wieght"):
        _update(d, T0, wieght=0.25)
    with pytest.raises(ValueError, match="weight"):
        _update(d, T0, weight=7.5)
    with pytest.raises(ValueError, match="weight"):
        _update(d, T0, weight=float("nan"))
    assert _update(d, T0, weight=0.25).weight == 0.25
