"""Revert, fallback and deploy locks (the seed's rollback procedures at any time), from the CLI on moto and from
Slack clicks on the fake: every change read back from Lambda, every refusal leaving the alias as it was."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from moto import mock_aws

from bot import views
from bot.actors import NotAuthorized, cli_actor
from bot.aws.clients import lambda_client
from bot.aws.traffic import LambdaTraffic
from bot.canary import InvalidPlan
from bot.cli import Console, run
from bot.clock import ManualClock
from bot.composition import build_runbook
from bot.config import load_policy
from bot.events import StateNoted, TrafficChanged, WatchAlert
from bot.model import State
from bot.ports import AwsFailure, NotFound, PublishedVersion
from bot.service import ActionPending, AlreadyActed, CanaryService, Refused
from bot.store import open_store
from bot.verbs import FallbackArgs, LockArgs, RevertArgs, StartArgs, UsageError, parse_words
from bot.views.watch import watch_alert_blocks
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api
from commands import fallback, lock, revert, start
from commands.base import Deps
from handlers.actions import CLICKS
from tests.support.world import ALIAS, FN, World, make_world, slack_user


# ---------------------------------------------------------------- the CLI on moto
class Moto:
    def __init__(self) -> None:
        self.client = lambda_client(region="us-east-1")
        seed_lego_api(self.client)
        self.service = CanaryService(
            traffic=LambdaTraffic(self.client),
            store=open_store("sqlite://:memory:"),
            policy=load_policy(None),
            clock=ManualClock(),
        )
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.answers: list[str] = []

    def run(self, line: str, user: str = "maria") -> int:
        for stream in (self.out, self.err):
            stream.seek(0)
            stream.truncate()
        console = Console(
            out=self.out, err=self.err, ask=lambda _q: self.answers.pop(0) if self.answers else ""
        )
        return run(line.split(), self.service, cli_actor(user), console)

    def alias(self) -> tuple[str, dict[str, float]]:
        got = self.client.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
        weights = got.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
        return got["FunctionVersion"], dict(weights)

    def env(self, version: str) -> dict[str, str]:
        got = self.client.get_function_configuration(FunctionName=LEGO_API, Qualifier=version)
        return dict(got.get("Environment", {}).get("Variables", {}))

    def promoted(self) -> None:
        assert self.run(f"start {LEGO_API} 2 --yes") == 0
        assert self.run(f"promote {LEGO_API} --yes") == 0
        assert self.alias() == ("2", {})


@pytest.fixture
def aws() -> Iterator[Moto]:
    with mock_aws():
        yield Moto()


def test_revert_after_a_promotion_routes_all_back_to_the_version_before(aws: Moto) -> None:
    aws.promoted()

    assert aws.run(f"revert {LEGO_API} --reason p95-up --yes") == 0

    assert aws.alias() == ("1", {})
    [d] = aws.service.ports.store.history(LEGO_API, PRODUCTION_ALIAS, 1)
    assert d.state is State.ROLLED_BACK and d.watch_until is None and d.reason == "p95-up"
    phases = [(r.action, r.phase) for r in aws.service.ports.store.audit_for(d.id) if r.action == "revert"]
    assert phases == [("revert", "intent"), ("revert", "done")]  # audited before and after
    assert "reverted: production-lego-api:production now 100% v1" in aws.out.getvalue()


def test_revert_asks_first_and_a_no_changes_nothing(aws: Moto) -> None:
    aws.promoted()
    aws.answers = ["n"]

    assert aws.run(f"revert {LEGO_API} --reason regression") == 3

    assert "100% v2 → 100% v1" in aws.out.getvalue()
    assert aws.alias() == ("2", {})


def test_revert_with_nothing_promoted_is_refused(aws: Moto) -> None:
    assert aws.run(f"revert {LEGO_API} --reason regression --yes") == 3
    assert "nothing to revert" in aws.err.getvalue()
    assert aws.alias() == ("1", {})


def test_revert_refuses_an_alias_someone_else_changed_and_says_what_it_found(aws: Moto) -> None:
    aws.promoted()
    aws.client.update_alias(
        FunctionName=LEGO_API,
        Name=PRODUCTION_ALIAS,
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.2}},
    )

    assert aws.run(f"revert {LEGO_API} --reason regression --yes") == 3

    assert "changed outside canary-bot" in aws.err.getvalue() and "80% v1 · 20% v2" in aws.err.getvalue()
    assert aws.alias() == ("1", {"2": 0.2})


def test_revert_without_a_reason_is_bad_input(aws: Moto) -> None:
    aws.promoted()
    assert aws.run(f"revert {LEGO_API} --yes") == 2
    assert "--reason is required" in aws.err.getvalue()
    assert aws.alias() == ("2", {})


def test_revert_with_json_needs_yes(aws: Moto) -> None:
    aws.promoted()
    assert aws.run(f"revert {LEGO_API} --reason x --json") == 2
    assert aws.alias() == ("2", {})


def test_fallback_publishes_the_serving_code_without_redis_and_routes_all_to_it(aws: Moto) -> None:
    aws.promoted()

    assert aws.run(f"fallback {LEGO_API} --unset REDIS_URL --reason cache-down --yes") == 0

    assert aws.alias() == ("3", {})
    assert "REDIS_URL" not in aws.env("3") and "REDIS_URL" in aws.env("2")
    assert aws.env("3") == aws.env("1")
    [d] = aws.service.ports.store.history(LEGO_API, PRODUCTION_ALIAS, 1)
    assert (d.state, d.stable_version, d.canary_version) == (State.PROMOTED, "2", "3")
    assert d.changes == {"REDIS_URL": None}


def test_a_fallback_can_itself_be_reverted(aws: Moto) -> None:
    aws.promoted()
    assert aws.run(f"fallback {LEGO_API} --unset REDIS_URL --yes") == 0

    assert aws.run(f"revert {LEGO_API} --reason redis-back --yes") == 0

    assert aws.alias() == ("2", {})


def test_fallback_rolls_a_live_canary_back_first(aws: Moto) -> None:
    assert aws.run(f"start {LEGO_API} 2 --yes") == 0
    assert aws.alias() == ("1", {"2": 0.05})

    assert aws.run(f"fallback {LEGO_API} --unset REDIS_URL --yes") == 0

    # v1 never had REDIS_URL: rolling the canary back was the whole fallback, and nothing was published.
    assert aws.alias() == ("1", {})
    canary = [
        d for d in aws.service.ports.store.history(LEGO_API, PRODUCTION_ALIAS, 5) if d.canary_version == "2"
    ]
    assert canary[0].state is State.ROLLED_BACK


def test_fallback_without_unset_is_bad_input(aws: Moto) -> None:
    assert aws.run(f"fallback {LEGO_API} --yes") == 2
    assert "--unset KEY" in aws.err.getvalue()
    assert aws.alias() == ("1", {})


def test_lock_refuses_a_start_until_unlocked_and_status_shows_it(aws: Moto) -> None:
    assert aws.run(f"lock {LEGO_API} --reason freeze") == 0

    assert aws.run(f"start {LEGO_API} 2 --yes") == 3
    assert "locked by maria" in aws.err.getvalue() and "freeze" in aws.err.getvalue()
    assert aws.alias() == ("1", {})
    assert aws.run(f"status {LEGO_API}") == 0
    assert "locked: production-lego-api:production by cli:maria" in aws.out.getvalue()

    assert aws.run(f"unlock {LEGO_API}") == 0
    assert aws.run(f"start {LEGO_API} 2 --yes") == 0
    assert aws.alias() == ("1", {"2": 0.05})


def test_a_lock_refuses_promote_but_never_rollback(aws: Moto) -> None:
    assert aws.run(f"start {LEGO_API} 2 --yes") == 0
    assert aws.run(f"lock {LEGO_API} --reason incident") == 0

    assert aws.run(f"promote {LEGO_API} --yes") == 3
    assert aws.run(f"weight {LEGO_API} 10%") == 3
    assert aws.alias() == ("1", {"2": 0.05})
    assert aws.run(f"rollback {LEGO_API} --reason incident --yes") == 0
    assert aws.alias() == ("1", {})


# ---------------------------------------------------------------- Slack clicks on the fake
APPROVER = slack_user("UAPPROVER1", "ana")
OUTSIDER = slack_user("UNOBODY", "eve")


def promoted(world: World) -> str:
    deployment_id = world.start()
    world.service.promote(FN, None, cli_actor("joe"))
    assert world.alias() == ("2", {})
    return deployment_id


def deps_of(world: World) -> Deps:
    return Deps(service=world.service, clock=world.clock, store=world.store)


def click(world: World, action: str, value: str, actor: Any = APPROVER) -> Any:
    return CLICKS[action](views.parse_button_value(value), actor, deps_of(world))


def alert_revert_value(world: World, deployment_id: str) -> str:
    d = world.store.get(deployment_id)
    assert d is not None
    alert = WatchAlert(deployment=d, at=world.clock.now(), actor="canary-bot", reason="p95 180 ms > 100 ms")
    blocks = watch_alert_blocks(alert, policy=world.service.policy_for(FN), now=world.clock.now())
    [value] = [e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    return str(value)


def test_revert_from_the_watch_alert_ends_the_watch_and_is_announced() -> None:
    world = make_world()
    deployment_id = promoted(world)
    assert [d.id for d in world.store.list_watching(world.clock.now())] == [deployment_id]

    reply = click(world, views.ACTION_REVERT, alert_revert_value(world, deployment_id))

    assert reply.replace_original and "Reverted by <@UAPPROVER1>" in reply.text
    assert world.alias() == ("1", {})
    assert world.store.list_watching(world.clock.now()) == []
    [told] = [e for e in world.notifier.events if isinstance(e, TrafficChanged) and e.action == "reverted"]
    blocks = views.traffic_changed_blocks(told, policy=world.service.policy_for(FN), now=world.clock.now())
    text = json.dumps(blocks)
    assert "ROLLBACK INITIATED" in text and "Reverted to version 1" in text
    assert "Investigating:" in text  # the status-page text


def test_the_same_revert_click_twice_changes_the_alias_once() -> None:
    world = make_world()
    deployment_id = promoted(world)
    value = alert_revert_value(world, deployment_id)
    writes = len(world.traffic.routing_writes)

    first = click(world, views.ACTION_REVERT, value)
    second = click(world, views.ACTION_REVERT, value)

    assert "Reverted" in first.text
    assert "already reverted" in second.text and not second.replace_original
    assert len(world.traffic.routing_writes) == writes + 1


def test_a_revert_click_by_someone_not_an_approver_is_refused_at_click_time() -> None:
    world = make_world()
    deployment_id = promoted(world)

    reply = click(world, views.ACTION_REVERT, alert_revert_value(world, deployment_id), actor=OUTSIDER)

    assert "not an approver" in reply.text
    assert world.alias() == ("2", {})


def test_revert_refuses_when_someone_else_changed_the_alias() -> None:
    world = make_world()
    deployment_id = promoted(world)
    world.traffic.force_change(FN, ALIAS, "1", {"2": 0.5})

    reply = click(world, views.ACTION_REVERT, alert_revert_value(world, deployment_id))

    assert "changed outside canary-bot" in reply.text and "50% v1 · 50% v2" in reply.text
    assert world.alias() == ("1", {"2": 0.5})


def test_the_revert_prompt_is_a_confirmed_danger_button_with_the_reason_escaped() -> None:
    world = make_world()
    promoted(world)

    reply = revert.handle(RevertArgs(function=FN, reason="<!channel> 5xx & worse"), APPROVER, deps_of(world))

    text = json.dumps(reply.blocks)
    [section] = [b["text"]["text"] for b in reply.blocks if b["type"] == "section"]
    assert "&lt;!channel&gt; 5xx &amp; worse" in section and "<!channel>" not in section
    del text
    [press] = [e for b in reply.blocks if b["type"] == "actions" for e in b["elements"]]
    assert press["style"] == "danger" and press["confirm"]["style"] == "danger"


def test_a_crash_between_publish_and_routing_publishes_once_and_the_reconciler_finishes_it() -> None:
    world = make_world()
    promoted(world)
    book = build_runbook(world.service)
    real = world.traffic.update_routing
    calls = {"n": 0}

    def lost_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise AwsFailure("connection reset")
        return real(*args, **kwargs)

    world.traffic.update_routing = lost_once  # type: ignore[method-assign]
    with pytest.raises(ActionPending):
        book.fallback.fallback(FN, None, APPROVER, unset=["REDIS_URL"], reason="redis down")
    assert world.alias() == ("2", {})
    [intent] = [i for i in world.store.unfinished_intents() if i.kind == "fallback"]
    assert intent.detail["published"] == "3" and intent.target.version == "3"

    world.service.reconciler.run_once(all_open=True)

    assert world.alias() == ("3", {})
    assert world.traffic.published_fallbacks == 1
    assert "REDIS_URL" not in world.traffic.version_env(FN, "3")


def test_a_publish_whose_answer_was_lost_is_found_again_not_published_twice() -> None:
    world = make_world()
    promoted(world)
    book = build_runbook(world.service)
    real = world.traffic.publish_fallback
    calls = {"n": 0}

    def answer_lost(*args: Any, **kwargs: Any) -> PublishedVersion:
        calls["n"] += 1
        published = real(*args, **kwargs)
        if calls["n"] == 1:
            raise AwsFailure("read timeout")  # it was published; we never heard
        return published

    world.traffic.publish_fallback = answer_lost  # type: ignore[method-assign]
    with pytest.raises(ActionPending):
        book.fallback.fallback(FN, None, APPROVER, unset=["REDIS_URL"])

    world.service.reconciler.run_once(all_open=True)

    assert world.alias() == ("3", {})
    assert world.traffic.published_fallbacks == 1 and calls["n"] == 2
    assert not world.traffic.version_exists(FN, "4")


def test_fallback_is_for_approvers_only() -> None:
    world = make_world()
    promoted(world)
    with pytest.raises(NotAuthorized):
        build_runbook(world.service).fallback.fallback(FN, None, OUTSIDER, unset=["REDIS_URL"])
    assert world.alias() == ("2", {})


def test_the_same_fallback_click_twice_publishes_and_routes_once() -> None:
    world = make_world()
    promoted(world)

    prompt = fallback.handle(FallbackArgs(function=FN, unset_env=("REDIS_URL",)), APPROVER, deps_of(world))
    [value] = [e["value"] for b in prompt.blocks if b["type"] == "actions" for e in b["elements"]]

    first = click(world, views.ACTION_FALLBACK, value)
    second = click(world, views.ACTION_FALLBACK, value)

    assert "Fallback by <@UAPPROVER1>" in first.text and world.alias() == ("3", {})
    assert "already done" in second.text
    assert world.traffic.published_fallbacks == 1


def test_a_rollback_locks_new_canaries_of_that_version_until_unlocked_or_overridden() -> None:
    world = make_world()
    world.start()
    world.service.rollback(FN, None, cli_actor("maria"), reason="error rate 2% > 0.1%")

    with pytest.raises(Exception, match="v2 of production-lego-api:production is locked since") as refused:
        world.service.plan(StartArgs(function=FN, version="2"), cli_actor("maria"))
    assert "--override-lock" in str(refused.value)

    world.service.plan(StartArgs(function=FN, version="2", override_lock="fixed in config"), APPROVER)
    audited = [
        r
        for d in world.store.history(FN, ALIAS, 5)
        for r in world.store.audit_for(d.id)
        if r.action == "override_lock"
    ]
    assert (
        audited and audited[0].reason == "fixed in config" and audited[0].actor.startswith("slack:UAPPROVER1")
    )


def test_overriding_a_lock_is_for_approvers_only() -> None:
    world = make_world()
    world.start()
    world.service.rollback(FN, None, cli_actor("maria"), reason="errors")

    with pytest.raises(NotAuthorized):
        world.service.plan(StartArgs(function=FN, version="2", override_lock="trust me"), OUTSIDER)


def test_a_locked_refusal_in_slack_names_who_and_escapes_the_reason() -> None:
    world = make_world()

    locked = lock.handle(
        LockArgs(function=FN, reason="<!channel> freeze & <https://x|click>"), APPROVER, deps_of(world)
    )
    assert "&lt;!channel&gt;" in locked.text and "<!channel>" not in locked.text

    reply = start.handle(StartArgs(function=FN, version="2"), slack_user("USTARTER"), deps_of(world))

    assert "locked by <@UAPPROVER1> since" in reply.text
    assert (
        "&lt;!channel&gt; freeze &amp; &lt;https://x|click&gt;" in reply.text
        and "<!channel>" not in reply.text
    )
    assert world.alias() == ("1", {})


def test_unlock_is_for_approvers_and_lock_for_whoever_may_start() -> None:
    world = make_world()
    book = build_runbook(world.service)
    book.locks.lock(FN, None, slack_user("USTARTER"), reason="freeze")

    with pytest.raises(NotAuthorized):
        book.locks.unlock(FN, None, OUTSIDER)
    assert book.locks.unlock(FN, None, APPROVER).locks
    assert world.store.locks_for(FN, ALIAS) == []


def test_slack_status_and_app_home_show_the_locks() -> None:
    from bot.verbs import StatusArgs
    from commands import status

    world = make_world()
    build_runbook(world.service).locks.lock(FN, None, APPROVER, reason="incident <42>")

    reply = status.handle(StatusArgs(), APPROVER, deps_of(world))
    home = views.home_view(
        [], now=world.clock.now(), can_act=lambda _d, _a: False, locks=world.store.list_locks()
    )

    for shown in (json.dumps(reply.blocks), json.dumps(home)):
        assert "production-lego-api:production locked by <@UAPPROVER1>" in shown
        assert "incident &lt;42&gt;" in shown


def test_a_start_while_a_fallback_is_being_applied_does_not_cancel_it() -> None:
    world = make_world()
    promoted(world)
    book = build_runbook(world.service)
    real = world.traffic.update_routing

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise AwsFailure("Throttling")

    world.traffic.update_routing = throttled  # type: ignore[method-assign]
    with pytest.raises(ActionPending):
        book.fallback.fallback(FN, None, APPROVER, unset=["REDIS_URL"], reason="redis down")
    world.traffic.update_routing = real  # type: ignore[method-assign]

    # The same approver, or anyone after the plan TTL, starting a canary must not cancel the fallback's plan.
    with pytest.raises(Exception, match="already has a live canary"):
        world.service.plan(StartArgs(function=FN, version="1"), APPROVER)
    world.service.reconciler.run_once(all_open=True)
    assert world.alias() == ("3", {})


# ---------------------------------------------------------------- found by a black-box pass
def test_a_fallback_waits_for_a_revert_that_aws_is_still_retrying() -> None:
    world = make_world()
    promoted(world)
    book = build_runbook(world.service)
    real = world.traffic.update_routing

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise AwsFailure("ThrottlingException")

    world.traffic.update_routing = throttled  # type: ignore[method-assign]
    with pytest.raises(ActionPending):
        book.revert.revert(FN, None, APPROVER, reason="p95 regression in v2")
    world.traffic.update_routing = real  # type: ignore[method-assign]

    with pytest.raises(Refused, match=r"revert of production-lego-api:production .* is still being applied"):
        book.fallback.fallback(FN, None, APPROVER, unset=["REDIS_URL"], reason="redis")
    assert world.alias() == ("2", {}) and not world.traffic.version_exists(FN, "3")

    world.service.reconciler.run_once(all_open=True)
    assert world.alias() == ("1", {})  # the revert people were promised


@pytest.mark.parametrize("keys", [["NOPE_KEY"], ["REDIS_URL", "NOPE_KEY"]])
def test_a_fallback_of_a_variable_the_serving_version_lacks_is_bad_input_and_changes_nothing(
    keys: list[str],
) -> None:
    world = make_world()
    promoted(world)
    book = build_runbook(world.service)
    with pytest.raises(InvalidPlan, match="NOPE_KEY is not set on v2"):
        book.fallback.fallback(FN, None, APPROVER, unset=keys)
    reply = fallback.handle(FallbackArgs(function=FN, unset_env=tuple(keys)), APPROVER, deps_of(world))
    assert "NOPE_KEY is not set on v2" in reply.text
    assert not [b for b in reply.blocks or [] if b.get("type") == "actions"]
    assert world.alias() == ("2", {}) and not world.traffic.version_exists(FN, "3")


def test_the_cli_fallback_of_an_absent_variable_exits_2_and_publishes_nothing(aws: Moto) -> None:
    assert aws.run(f"fallback {LEGO_API} --unset NOPE_KEY --yes") == 2
    assert aws.alias() == ("1", {})


def test_a_second_revert_click_does_not_echo_the_first_reason_unescaped() -> None:
    world = make_world()
    deployment_id = promoted(world)
    book = build_runbook(world.service)
    book.revert.revert(FN, None, APPROVER, reason="<!channel> *bold* <https://evil.example|click>")
    with pytest.raises(AlreadyActed) as refused:
        book.revert.revert(FN, None, APPROVER, reason="again", deployment_id=deployment_id)
    assert "already reverted" in str(refused.value)
    assert "<!channel>" not in str(refused.value) and "evil.example" not in str(refused.value)


@pytest.mark.parametrize("reason", ["\x01" * 10, "ok \u202e txet", "nul\x00"])
def test_a_reason_with_control_or_direction_characters_is_bad_input(reason: str) -> None:
    with pytest.raises(UsageError, match="invisible character"):
        parse_words(["revert", FN, "--reason", reason])


def test_a_fallback_of_too_many_variables_is_bad_input() -> None:
    words = ["fallback", FN] + [part for i in range(11) for part in ("--unset", f"K{i}")]
    with pytest.raises(UsageError, match="at most 10"):
        parse_words(words)


def test_a_lock_on_an_alias_that_does_not_exist_is_refused_and_names_the_unlock_for_other_aliases() -> None:
    world = make_world()
    book = build_runbook(world.service)
    with pytest.raises(NotFound):
        book.locks.lock(FN, "nosuchalias", APPROVER, reason="x")
    assert world.store.list_locks() == []
    world.traffic.add_alias(FN, "staging", "1")
    locked = book.locks.lock(FN, "staging", APPROVER, reason="x")
    assert f"`unlock {FN} --alias staging`" in locked.message


def test_a_lock_put_on_while_aws_retries_a_promote_stops_the_promote_and_says_so() -> None:
    world = make_world()
    did = world.start()
    real = world.traffic.update_routing

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise AwsFailure("ThrottlingException")

    world.traffic.update_routing = throttled  # type: ignore[method-assign]
    with pytest.raises(ActionPending):
        world.service.promote(FN, None, cli_actor("joe"))
    world.traffic.update_routing = real  # type: ignore[method-assign]
    world.clock.advance(timedelta(seconds=5))
    build_runbook(world.service).locks.lock(FN, None, APPROVER, reason="incident <!channel>")

    world.clock.advance(timedelta(minutes=5))
    world.service.reconciler.run_once(all_open=True)

    assert world.alias() == ("1", {"2": 0.05})  # not promoted while locked
    assert world.store.get(did).state is State.CANARY
    [told] = [
        e for e in world.notifier.events if isinstance(e, StateNoted) and "not applied" in (e.reason or "")
    ]
    assert "promote by cli:joe not applied" in (told.reason or "") and "incident" in (told.reason or "")
    # Rollback still works on the locked alias.
    world.service.rollback(FN, None, APPROVER, reason="incident")
    assert world.alias() == ("1", {})


def test_a_change_aws_is_still_retrying_reads_as_recorded_not_as_a_failure() -> None:
    from commands.base import error_reply

    reply = error_reply(
        ActionPending("AWS did not take the revert yet: Throttling. no need to ask again."), "revert"
    )
    assert reply.text.startswith("⏳ Recorded, not applied yet:")
    assert "did not do it" not in reply.text and ".." not in reply.text
