"""Durable actions: intents survive lost answers, throttles and restarts; the reconciler finishes them once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.actors import BOT, Authorizer, cli_actor
from bot.events import Started, StateNoted, TrafficChanged
from bot.intents import Intent, Routing, backoff
from bot.model import State
from bot.ports import AwsFailure, IntentInProgress
from bot.reconciler import Reconciler, lease_name, new_intent_id
from bot.service import ActionPending, CanaryService
from bot.verbs import StartArgs
from tests.support.world import FN, World, make_world

MARIA = cli_actor("maria")
JOE = cli_actor("joe")


def restarted(world: World) -> CanaryService:
    """A new process on the same store and the same AWS: nothing in memory survives."""
    return CanaryService(
        traffic=world.traffic,
        store=world.store,
        policy=world.service.ports.policy,
        clock=world.clock,
        notifier=world.notifier,
        authorizer=Authorizer(world.groups),
    )


def plan(world: World) -> str:
    return world.service.plan(StartArgs(function=FN, version="2"), MARIA).deployment.id


def test_a_start_whose_answer_was_lost_is_found_landed_and_recorded_once_after_a_restart() -> None:
    world = make_world()
    did = plan(world)
    world.traffic.lose_next_answer(AwsFailure("connection reset after UpdateAlias was sent"))
    with pytest.raises(ActionPending):
        world.service.confirm(did, MARIA)
    assert world.alias() == ("1", {"2": 0.05})  # it landed
    assert world.service.get(did).state is State.PLANNED  # but the process could not record it

    restarted(world).reconciler.run_once(all_open=True)  # what start-up does

    d = world.service.get(did)
    assert d.state is State.CANARY and d.weight == 0.05
    assert len(world.traffic.routing_writes) == 1  # found there, not written again
    assert [type(e) for e in world.notifier.events if isinstance(e, Started)] == [Started]


def test_a_rollback_throttled_by_aws_is_retried_with_backoff_until_it_lands() -> None:
    world = make_world()
    world.start()
    world.traffic.fail_next(AwsFailure("ThrottlingException: Rate exceeded"))
    with pytest.raises(ActionPending):
        world.service.rollback(FN, None, JOE, reason="p95 too high")
    d = world.service.live(FN)
    assert d.state is State.ROLLING_BACK
    intent = world.store.open_intent_for(d.id)
    assert intent is not None and intent.attempts == 1 and intent.next_attempt_at is not None

    world.service.reconciler.run_once()  # not due yet: backoff
    assert world.alias() == ("1", {"2": 0.05})
    world.clock.advance(timedelta(minutes=1))
    world.service.reconciler.run_once()

    assert world.alias() == ("1", {})
    assert world.service.history(FN)[0].deployment.state is State.ROLLED_BACK
    rolled = [e for e in world.notifier.events if isinstance(e, TrafficChanged) and e.action == "rolled_back"]
    assert len(rolled) == 1


def test_failures_past_the_threshold_mention_the_approvers_once_and_the_loop_keeps_trying() -> None:
    world = make_world()
    world.start()
    reconciler = world.service.reconciler
    with pytest.raises(ActionPending):
        world.traffic.fail_next(AwsFailure("HTTP 500"))
        world.service.rollback(FN, None, JOE, reason="bad")
    for _ in range(4):
        world.clock.advance(timedelta(minutes=2))
        world.traffic.fail_next(AwsFailure("HTTP 500"))
        reconciler.run_once()
    stuck = [e for e in world.notifier.events if isinstance(e, StateNoted) and e.what == "stuck"]
    assert len(stuck) == 1 and "HTTP 500" in (stuck[0].reason or "")
    world.clock.advance(timedelta(minutes=2))
    reconciler.run_once()
    assert world.alias() == ("1", {})


def test_a_rollback_saved_without_its_intent_gets_one_on_the_next_pass() -> None:
    """The process died between saving ROLLING_BACK and writing the intent."""
    world = make_world()
    did = world.start()
    store = world.store
    from bot import canary

    d = store.get(did)
    assert d is not None
    store.save(canary.begin_rollback(d, now=world.clock.now(), actor=BOT.label, reason="alarm").deployment)

    restarted(world).reconciler.run_once()

    assert world.alias() == ("1", {})
    assert world.service.history(FN)[0].deployment.state is State.ROLLED_BACK


def test_a_rollback_supersedes_a_promote_that_is_still_being_retried() -> None:
    world = make_world()
    world.start()
    world.traffic.fail_next(AwsFailure("ThrottlingException"))
    with pytest.raises(ActionPending):
        world.service.promote(FN, None, JOE)
    world.service.rollback(FN, None, JOE, reason="changed my mind")
    assert world.alias() == ("1", {})
    intents = world.store.intents_for(world.service.history(FN)[0].deployment.id)
    assert [(i.kind, i.status) for i in intents][-2:] == [("promote", "superseded"), ("rollback", "done")]


def test_only_one_intent_per_deployment_is_open_at_a_time() -> None:
    world = make_world()
    did = world.start()
    store = world.store
    d = store.get(did)
    assert d is not None

    def intent(kind: str) -> Intent:
        return Intent(
            id=new_intent_id(did, kind),  # type: ignore[arg-type]
            deployment_id=did,
            kind=kind,  # type: ignore[arg-type]
            target=Routing(version="2"),
            accept_from=(Routing(version="1", weights={"2": 0.05}),),
            actor="test",
            created_at=world.clock.now(),
        )

    store.open_intent(intent("promote"))
    with pytest.raises(IntentInProgress):
        store.open_intent(intent("weight"))


def test_a_lease_is_held_by_one_owner_until_it_lapses_and_the_token_grows_on_takeover() -> None:
    world = make_world()
    store = world.store
    now = world.clock.now()
    first = store.acquire_lease("deployment:x", "a", now, 30)
    assert first is not None
    assert store.acquire_lease("deployment:x", "b", now, 30) is None
    assert store.acquire_lease("deployment:x", "a", now, 30) == first  # renewal keeps the token
    later = now + timedelta(seconds=31)
    taken = store.acquire_lease("deployment:x", "b", later, 30)
    assert taken is not None and taken > first
    assert not store.holds_lease("deployment:x", "a", first, later)
    store.release_lease("deployment:x", "b")
    assert store.acquire_lease("deployment:x", "a", later, 30) is not None


def test_a_replica_that_lost_its_lease_does_not_record_the_change() -> None:
    world = make_world()
    did = world.start()
    service = world.service
    other = Reconciler(
        traffic=world.traffic,
        store=world.store,
        clock=world.clock,
        policy=service.ports.policy,
        notify=lambda e: None,
        owner="other-replica",
    )
    # Another replica holds the deployment's lease: our drive waits, then leaves the intent to it.
    assert world.store.acquire_lease(lease_name(did), other.owner, world.clock.now(), 30) is not None
    with pytest.raises(ActionPending):
        service.promote(FN, None, JOE)
    assert world.alias() == ("1", {"2": 0.05})
    world.store.release_lease(lease_name(did), other.owner)
    other.run_once()
    assert world.alias() == ("2", {})
    assert service.get(did).state is State.PROMOTED


def test_two_alarm_rollbacks_at_once_write_the_alias_once() -> None:
    world = make_world()
    did = world.start()
    writes = len(world.traffic.routing_writes)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def alarm() -> None:
        barrier.wait()
        try:
            d = world.service.get(did)
            world.service.automatic.roll_back_for_alarm(
                d, alarm="errors", reason="alarm", received_at=world.clock.now()
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=alarm) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(world.traffic.routing_writes) - writes == 1
    assert world.alias() == ("1", {})


def test_backoff_grows_with_attempts_and_is_capped() -> None:
    import random

    rng = random.Random(7)
    assert backoff(1, rng=rng) == timedelta(seconds=1)
    assert all(timedelta(seconds=1) <= backoff(n, rng=rng) <= timedelta(seconds=60) for n in range(1, 30))
    assert max(backoff(10, rng=rng) for _ in range(50)) > timedelta(seconds=30)


def test_rolling_back_a_plan_whose_start_is_still_retried_reverts_what_the_start_wrote() -> None:
    world = make_world()
    did = plan(world)
    world.traffic.lose_next_answer(AwsFailure("timeout"))
    with pytest.raises(ActionPending):
        world.service.confirm(did, MARIA)
    assert world.alias() == ("1", {"2": 0.05})

    world.service.rollback(FN, None, JOE, reason="wrong version")

    assert world.alias() == ("1", {})
    assert world.service.get(did).state is State.CANCELLED
    world.clock.advance(timedelta(minutes=5))
    world.service.reconciler.run_once(all_open=True)
    assert world.alias() == ("1", {})  # the superseded start is never applied again


def test_a_change_of_a_deployment_that_ended_meanwhile_is_dropped_unwritten() -> None:
    world = make_world()
    did = world.start()
    world.service.promote(FN, None, JOE)
    store = world.store
    writes = len(world.traffic.routing_writes)
    late = Intent(
        id=new_intent_id(did, "weight"),
        deployment_id=did,
        kind="weight",
        target=Routing(version="1", weights={"2": 0.25}),
        accept_from=(Routing(version="2"),),
        actor="a replica that was asleep",
        detail={"weight": 0.25},
        created_at=world.clock.now(),
    )
    store.open_intent(late)

    [result] = world.service.reconciler.run_once()

    assert result.status == "closed" and "promoted" in (result.error or "")
    assert len(world.traffic.routing_writes) == writes
    assert world.alias() == ("2", {})


def test_a_failed_alias_read_during_a_promote_leaves_no_lock_behind() -> None:
    world = make_world()
    world.start()
    world.traffic.fail_next_read(AwsFailure("GetAlias: HTTP 500"))
    with pytest.raises(ActionPending):
        world.service.promote(FN, None, JOE)

    world.service.promote(FN, None, JOE)  # asking again retries it now; nothing is stuck "in progress"

    assert world.alias() == ("2", {})
    assert world.service.history(FN)[0].deployment.state is State.PROMOTED


def test_a_crash_between_recording_a_rollback_and_announcing_it_announces_it_after_the_restart() -> None:
    world = make_world()
    world.start()

    class Crash(BaseException):
        pass

    def crash(*_args: object) -> None:
        raise Crash

    world.service.reconciler._follow_up = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.service.rollback(FN, None, JOE, reason="bad")
    assert world.service.history(FN)[0].deployment.state is State.ROLLED_BACK
    assert not [e for e in world.notifier.events if isinstance(e, TrafficChanged)]

    restarted(world).reconciler.run_once(all_open=True)

    rolled = [e for e in world.notifier.events if isinstance(e, TrafficChanged) and e.action == "rolled_back"]
    assert len(rolled) == 1
    restarted(world).reconciler.run_once(all_open=True)
    assert len([e for e in world.notifier.events if isinstance(e, TrafficChanged)]) == 1
