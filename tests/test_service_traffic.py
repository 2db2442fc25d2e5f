"""CanaryService: the one path that changes traffic — start, promote, rollback, refusals, drift, races."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.actors import cli_actor
from bot.canary import InvalidPlan
from bot.composition import build_runbook
from bot.events import Started, StateNoted, TrafficChanged
from bot.model import State
from bot.ports import AliasDrift, AwsFailure, FunctionNotFound, LiveDeploymentExists, VersionNotFound
from bot.service import AlreadyActed, NothingLive, NotInPolicy, Refused
from bot.verbs import StartArgs
from tests.support.world import ALIAS, FN, make_world

MARIA = cli_actor("maria")
JOE = cli_actor("joe")


def test_plan_does_not_touch_the_alias_and_confirm_routes_five_percent() -> None:
    world = make_world()
    plan = world.service.plan(StartArgs(function=FN, version="2"), MARIA)
    assert plan.deployment.state is State.PLANNED
    assert world.alias() == ("1", {})
    assert world.traffic.routing_writes == []

    result = world.service.confirm(plan.deployment.id, MARIA)

    assert world.alias() == ("1", {"2": 0.05})
    assert result.deployment.state is State.CANARY
    assert result.deployment.soak_ends_at == world.clock.now() + timedelta(hours=1)
    assert isinstance(world.notifier.events[-1], Started)


def test_every_traffic_change_is_audited_before_and_after_with_the_alias() -> None:
    world = make_world()
    deployment_id = world.start()
    world.service.promote(FN, None, JOE)

    records = world.store.audit_for(deployment_id)
    phases = [(r.action, r.phase) for r in records]
    assert phases == [
        ("plan", "event"),
        ("start", "intent"),
        ("start", "done"),
        ("promote", "intent"),
        ("promote", "done"),
    ]
    promote_done = records[-1]
    assert promote_done.actor == "cli:joe"
    assert promote_done.alias_before is not None and promote_done.alias_before["weights"] == {"2": 0.05}
    assert promote_done.alias_after is not None and promote_done.alias_after["version"] == "2"


def test_promote_sends_all_traffic_to_the_canary_and_clears_routing() -> None:
    world = make_world()
    world.start()
    result = world.service.promote(FN, None, JOE)
    assert world.alias() == ("2", {})
    assert result.deployment.state is State.PROMOTED
    event = world.notifier.events[-1]
    assert isinstance(event, TrafficChanged) and event.action == "promoted"


def test_rollback_reverts_the_alias_to_stable_with_the_reason() -> None:
    world = make_world()
    world.start()
    result = world.service.rollback(FN, None, JOE, reason="cache hit 60%")
    assert world.alias() == ("1", {})
    assert result.deployment.state is State.ROLLED_BACK
    assert result.deployment.reason == "cache hit 60%"
    event = world.notifier.events[-1]
    assert (
        isinstance(event, TrafficChanged)
        and event.action == "rolled_back"
        and event.reason == "cache hit 60%"
    )


def test_a_second_start_while_one_is_live_is_refused_and_changes_nothing() -> None:
    world = make_world()
    world.start()
    writes = len(world.traffic.routing_writes)
    with pytest.raises((LiveDeploymentExists, Refused)):
        world.service.plan(StartArgs(function=FN, version="2"), JOE)
    assert world.alias() == ("1", {"2": 0.05})
    assert len(world.traffic.routing_writes) == writes


def test_promote_or_rollback_with_nothing_live_is_refused() -> None:
    world = make_world()
    with pytest.raises(NothingLive):
        world.service.promote(FN, None, JOE)
    with pytest.raises(NothingLive):
        world.service.rollback(FN, None, JOE, reason="x")
    assert world.alias() == ("1", {})


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (StartArgs(function="unlisted-fn", version="2"), NotInPolicy),
        (StartArgs(function=FN, version="1"), InvalidPlan),
        (StartArgs(function=FN, version="9"), VersionNotFound),
        (StartArgs(function=FN), InvalidPlan),
    ],
    ids=["function-not-in-policy", "version-equal-to-stable", "version-missing", "no-version-no-publish"],
)
def test_bad_start_requests_are_refused_without_touching_the_alias(args: StartArgs, error: type) -> None:
    world = make_world()
    with pytest.raises(error):
        world.service.plan(args, MARIA)
    assert world.alias() == ("1", {})
    assert world.store.list_live() == []


def test_a_function_listed_in_the_policy_but_missing_in_lambda_is_reported() -> None:
    world = make_world()
    world.traffic.remove_function(FN)
    with pytest.raises(FunctionNotFound):
        world.service.plan(StartArgs(function=FN, version="2"), MARIA)


def test_publish_creates_a_version_with_the_environment_change_and_plans_it() -> None:
    world = make_world()
    plan = world.service.plan(
        StartArgs(function=FN, publish=True, set_env={"FEATURE": "on"}, unset_env=("JWT_SECRET",)), MARIA
    )
    version = plan.deployment.canary_version
    assert version == "3"
    env = world.traffic.version_env(FN, version)
    assert env["FEATURE"] == "on" and "JWT_SECRET" not in env
    assert plan.deployment.changes == {"FEATURE": "on", "JWT_SECRET": None}
    assert world.alias() == ("1", {})


def test_confirm_after_someone_changed_the_alias_is_refused_and_the_plan_cancelled() -> None:
    world = make_world()
    plan = world.service.plan(StartArgs(function=FN, version="2"), MARIA)
    world.traffic.force_change(FN, ALIAS, "1", {"2": 0.5})
    with pytest.raises(AliasDrift):
        world.service.confirm(plan.deployment.id, MARIA)
    assert world.alias() == ("1", {"2": 0.5})
    assert world.service.get(plan.deployment.id).state is State.CANCELLED


def test_drift_during_promote_holds_the_canary_and_writes_nothing() -> None:
    world = make_world()
    world.start()
    world.traffic.force_change(FN, ALIAS, "1", {"2": 0.2})
    writes = len(world.traffic.routing_writes)
    with pytest.raises(AliasDrift):
        world.service.promote(FN, None, JOE)
    assert world.alias() == ("1", {"2": 0.2})
    assert len(world.traffic.routing_writes) == writes
    assert world.service.live(FN).state is State.HELD
    assert any(isinstance(e, StateNoted) and e.what == "drift" for e in world.notifier.events)


def test_revision_mismatch_at_write_time_is_drift_not_a_retry() -> None:
    world = make_world()
    world.start()
    world.traffic.fail_next(AliasDrift("changed under us"))
    with pytest.raises(AliasDrift):
        world.service.promote(FN, None, JOE)
    assert world.alias() == ("1", {"2": 0.05})
    failed = [r for r in world.store.audit_for(world.service.live(FN).id) if r.phase == "failed"]
    assert [r.action for r in failed] == ["promote"]


def test_an_aws_failure_leaves_the_canary_as_it_was_and_can_be_retried() -> None:
    world = make_world()
    world.start()
    world.traffic.fail_next(AwsFailure("ThrottlingException"))
    with pytest.raises(AwsFailure):
        world.service.promote(FN, None, JOE)
    assert world.service.live(FN).state is State.CANARY
    world.service.promote(FN, None, JOE)
    assert world.alias() == ("2", {})


def test_ten_concurrent_promotes_change_the_alias_once_and_tell_the_others_who_acted() -> None:
    world = make_world()
    world.start()
    revision = world.service.live(FN).revision
    writes_before = len(world.traffic.routing_writes)
    barrier = threading.Barrier(10)
    outcomes: list[str] = []
    lock = threading.Lock()

    def click(i: int) -> None:
        barrier.wait()
        try:
            world.service.promote(FN, None, cli_actor(f"user{i}"), expected_revision=revision)
            result = "ok"
        except (AlreadyActed, NothingLive) as exc:
            result = str(exc)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=click, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert outcomes.count("ok") == 1
    assert len(world.traffic.routing_writes) - writes_before == 1
    refusals = [o for o in outcomes if o != "ok"]
    assert all("promote" in o or "in progress" in o for o in refusals), refusals


def test_a_click_rendered_for_an_older_revision_is_refused_saying_what_changed() -> None:
    world = make_world()
    world.start()
    old = world.service.live(FN).revision
    world.service.extend(FN, None, MARIA, by=timedelta(minutes=30))
    with pytest.raises(AlreadyActed, match=r"out of date.*extend"):
        world.service.promote(FN, None, JOE, expected_revision=old)
    assert world.alias() == ("1", {"2": 0.05})


def test_a_failing_notifier_never_blocks_or_undoes_a_traffic_change() -> None:
    world = make_world()

    class Broken:
        def publish(self, event: object) -> None:
            raise RuntimeError("slack is down")

    world.announcer.notifier = Broken()
    world.start()
    world.service.rollback(FN, None, JOE, reason="test")
    assert world.alias() == ("1", {})


def test_rollback_of_a_plan_cancels_it_without_touching_the_alias() -> None:
    world = make_world()
    world.service.plan(StartArgs(function=FN, version="2"), MARIA)
    result = world.service.rollback(FN, None, JOE, reason="changed my mind")
    assert result.deployment.state is State.CANCELLED
    assert world.traffic.routing_writes == []


def test_rollback_when_alias_already_reverted_by_hand_just_records_it() -> None:
    world = make_world()
    world.start()
    world.traffic.force_change(FN, ALIAS, "1", {})
    result = world.service.rollback(FN, None, JOE, reason="manual revert")
    assert result.deployment.state is State.ROLLED_BACK
    assert world.alias() == ("1", {})


def test_rollback_refuses_to_overwrite_an_alias_someone_else_repointed() -> None:
    world = make_world()
    world.start()
    world.traffic.force_change(FN, ALIAS, "2", {})
    with pytest.raises(AliasDrift):
        world.service.rollback(FN, None, JOE, reason="bad")
    assert world.alias() == ("2", {})


def test_weight_hold_resume_and_extend_work_mid_flight() -> None:
    world = make_world()
    world.start()
    world.service.set_weight(FN, None, JOE, weight=0.25)
    assert world.alias() == ("1", {"2": 0.25})
    world.service.hold(FN, None, JOE, reason="investigating")
    assert world.service.live(FN).state is State.HELD
    world.clock.advance(timedelta(minutes=10))
    world.service.resume(FN, None, JOE)
    d = world.service.live(FN)
    assert d.state is State.CANARY
    ends = d.soak_ends_at
    world.service.extend(FN, None, JOE, by=timedelta(minutes=30))
    assert world.service.live(FN).soak_ends_at == ends + timedelta(minutes=30)  # type: ignore[operator]


def test_a_stale_plan_is_superseded_but_a_running_canary_is_not() -> None:
    world = make_world()
    world.service.plan(StartArgs(function=FN, version="2"), MARIA)
    world.clock.advance(timedelta(minutes=16))
    plan = world.service.plan(StartArgs(function=FN, version="2"), JOE)
    assert plan.deployment.state is State.PLANNED
    world.service.confirm(plan.deployment.id, JOE)
    with pytest.raises(LiveDeploymentExists):
        world.service.plan(StartArgs(function=FN, version="2"), JOE)


def test_an_expired_preview_cannot_be_confirmed() -> None:
    world = make_world()
    plan = world.service.plan(StartArgs(function=FN, version="2"), MARIA)
    world.clock.advance(timedelta(minutes=20))
    with pytest.raises(Refused, match="expired"):
        world.service.confirm(plan.deployment.id, MARIA)
    assert world.alias() == ("1", {})


def test_history_lists_every_step_with_its_actor() -> None:
    world = make_world()
    world.start()
    world.service.rollback(FN, None, JOE, reason="bad")
    build_runbook(world.service).locks.unlock(FN, None, JOE)  # the rollback locked v2
    world.start(actor=MARIA)
    world.service.promote(FN, None, JOE)
    history = world.service.history(FN)
    assert [h.deployment.state for h in history] == [State.PROMOTED, State.ROLLED_BACK]
    actors = {(r.action, r.actor) for h in history for r in h.audit if r.phase == "done"}
    assert ("promote", "cli:joe") in actors and ("finish_rollback", "cli:joe") in actors
    assert ("start", "cli:maria") in actors


def test_a_retry_after_a_write_that_landed_but_timed_out_just_records_it() -> None:
    world = make_world()
    world.start()
    d = world.service.live(FN)
    world.traffic.force_change(FN, ALIAS, "2", {})  # the promote's write landed; its answer was lost
    world.store.save(d.model_copy(update={"alias_revision": world.traffic.get_alias(FN, ALIAS).revision_id}))
    result = world.service.promote(FN, None, JOE)
    assert result.deployment.state is State.PROMOTED
    assert world.alias() == ("2", {})
