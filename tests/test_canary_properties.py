"""Properties of the state machine over random plans and random sequences of transitions (hypothesis)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import canary
from bot.canary import IllegalTransition, Transition
from bot.model import ROUTED_STATES, TERMINAL_STATES, Deployment, State
from tests.support.canary_core import T0

Call = Callable[[Deployment, datetime, float], Transition]

CALLS: dict[str, Call] = {
    "start": lambda d, now, w: canary.start(d, now=now, actor="U_A", alias_revision="r"),
    "cancel": lambda d, now, w: canary.cancel(d, now=now, actor="U_A", reason="no"),
    "set_weight": lambda d, now, w: canary.set_weight(d, weight=w, now=now, actor="U_A", alias_revision="r"),
    "next_step": lambda d, now, w: canary.next_step(d, now=now, actor="canary-bot", alias_revision="r"),
    "await_approval": lambda d, now, w: canary.await_approval(
        d, now=now, deadline=now + timedelta(minutes=30)
    ),
    "extend": lambda d, now, w: canary.extend(d, by=timedelta(minutes=15), now=now, actor="U_A"),
    "hold": lambda d, now, w: canary.hold(d, now=now, actor="U_A", reason="look"),
    "resume": lambda d, now, w: canary.resume(d, now=now, actor="U_A"),
    "promote": lambda d, now, w: canary.promote(d, now=now, actor="U_A", alias_revision="r"),
    "begin_rollback": lambda d, now, w: canary.begin_rollback(d, now=now, actor="U_A", reason="bad"),
    "finish_rollback": lambda d, now, w: canary.finish_rollback(d, now=now, actor="U_A", alias_revision="r"),
}

open_fraction = st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True, allow_nan=False)
rising_steps = st.lists(open_fraction, min_size=1, max_size=5, unique=True).map(sorted)
soaks = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=1))
versions = st.integers(min_value=1, max_value=500).map(str)


@st.composite
def plans(draw: st.DrawFn) -> Deployment:
    stable = draw(versions)
    canary_version = draw(versions.filter(lambda v: v != stable))
    return canary.plan(
        id="d-prop",
        function="production-lego-api",
        alias="production",
        stable_version=stable,
        canary_version=canary_version,
        steps=draw(rising_steps),
        soak=draw(soaks),
        actor="U_A",
        now=T0,
    ).deployment


def assert_invariants(d: Deployment, origin: Deployment) -> None:
    assert 0 < d.weight < 1
    assert (d.stable_version, d.canary_version, d.steps) == (
        origin.stable_version,
        origin.canary_version,
        origin.steps,
    )
    assert d.stable_version != d.canary_version
    assert 0 <= d.step_index < len(d.steps)
    assert d.revision == origin.revision  # the store's, never the core's
    primary, weights = canary.expected_routing(d)
    if d.state in ROUTED_STATES:
        # Exactly two versions on the alias: stable as primary, the canary at its weight.
        assert (primary, weights) == (d.stable_version, {d.canary_version: d.weight})
    else:
        assert weights == {}
        assert primary == (d.canary_version if d.state is State.PROMOTED else d.stable_version)
    if d.state is State.HELD:
        assert d.held_from in {State.CANARY, State.AWAITING_APPROVAL}
    else:
        assert d.held_from is None


# Endings are drawn less often than moves that keep the canary going, so runs get deep into the machine.
ENDINGS = frozenset({"cancel", "promote", "begin_rollback"})


def choose_action(data: st.DataObject, d: Deployment) -> str:
    """Mostly a legal move (endings rarer), sometimes any move at all, to see illegal ones refused."""
    legal = [a for a in sorted(CALLS) if canary.can(d, a)]
    if not legal or data.draw(st.integers(0, 9), label="try any") == 0:
        return data.draw(st.sampled_from(sorted(CALLS)), label="any action")
    weighted = [a for a in legal for _ in range(1 if a in ENDINGS else 4)]
    return data.draw(st.sampled_from(weighted), label="legal action")


@settings(max_examples=100, deadline=None)
@given(origin=plans(), data=st.data())
def test_random_transition_sequences_keep_the_invariants(origin: Deployment, data: st.DataObject) -> None:
    d, now = origin, T0
    for _ in range(data.draw(st.integers(0, 30), label="moves")):
        action = choose_action(data, d)
        now += data.draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=3)), label="gap")
        weight = data.draw(open_fraction, label="weight")
        if not canary.can(d, action):
            with pytest.raises(IllegalTransition):
                CALLS[action](d, now, weight)
            continue
        result = CALLS[action](d, now, weight)
        # Exactly one audit record, and it tells the truth about the move.
        assert (result.audit.from_state, result.audit.to_state) == (d.state, result.deployment.state)
        assert (result.audit.deployment_id, result.audit.action, result.audit.at) == (d.id, action, now)
        assert result.deployment.updated_at == now
        d = result.deployment
        assert_invariants(d, origin)
        if d.state in TERMINAL_STATES:
            break  # what happens after the end has its own property below


@settings(max_examples=50, deadline=None)
@given(origin=plans(), data=st.data(), weight=open_fraction)
def test_once_terminal_every_transition_raises(
    origin: Deployment, data: st.DataObject, weight: float
) -> None:
    d, now = origin, T0
    for _ in range(data.draw(st.integers(0, 20), label="moves")):
        action = choose_action(data, d)
        if canary.can(d, action):
            d = CALLS[action](d, now, weight).deployment
        if d.state in TERMINAL_STATES:
            break
    # Drive whatever is still live to an end, then nothing may move it again.
    for ending in ("cancel", "begin_rollback", "finish_rollback"):
        if canary.can(d, ending):
            d = CALLS[ending](d, now, weight).deployment
    assert d.state in TERMINAL_STATES
    for action, call in CALLS.items():
        assert not canary.can(d, action)
        with pytest.raises(IllegalTransition):
            call(d, now + timedelta(minutes=1), weight)
    with pytest.raises(IllegalTransition):
        canary.note_verdict(d, now=now, verdict="pass", breach_streak=0)


@settings(max_examples=50, deadline=None)
@given(
    origin=plans(),
    weight=st.one_of(
        st.floats(max_value=0.0),
        st.floats(min_value=1.0),
        st.just(float("nan")),
    ),
)
def test_no_weight_outside_the_open_interval_is_ever_accepted(origin: Deployment, weight: float) -> None:
    d = canary.start(origin, now=T0, actor="U_A", alias_revision="r").deployment
    with pytest.raises(canary.InvalidPlan):
        canary.set_weight(d, weight=weight, now=T0, actor="U_A", alias_revision="r")
