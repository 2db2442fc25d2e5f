"""The preflight where people meet it: before every start (a 🔴 blocks it unless an approver overrides it with
a reason, audited), as `canary-bot preflight` (exit 0 / 3 / 2 / 1) and as `/canary preflight` in Slack."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from bot.actors import NotAuthorized, cli_actor
from bot.cli import Console, run
from bot.ports import AwsFailure
from bot.preflight import SEED_CHECKS, PreflightRequest
from bot.preflight_guard import PreflightFailed
from bot.verbs import StartArgs, UsageError, parse_text
from canary_demo.fakes.preflight import FakePreflight
from tests.support.preflight_world import SECRET
from tests.support.slack_world import APPROVER, STARTER, slack_world
from tests.support.world import FN, World, make_world, policy_with, slack_user
from tests.test_preflight_checks import ready

POLICY = {"preflight": list(SEED_CHECKS), "secret": SECRET}


def world_with(fake: FakePreflight, **policy: Any) -> World:
    return make_world(policy_with(**(POLICY | policy)), preflight=fake)


def broken() -> FakePreflight:
    fake = ready()
    fake.secrets.clear()
    return fake


# ---------------------------------------------------------------- start
def test_a_passing_preflight_is_part_of_the_plan_and_of_its_audit_line() -> None:
    world = world_with(ready())
    plan = world.service.plan(StartArgs(function=FN, version="2"), slack_user(STARTER))
    assert plan.preflight is not None and plan.preflight.ok
    audit = world.store.audit_for(plan.deployment.id)[0]
    assert [r["status"] for r in audit.detail["preflight"]["results"]] == ["pass"] * 9


def test_a_red_check_refuses_the_start_and_changes_nothing() -> None:
    world = world_with(broken())
    with pytest.raises(PreflightFailed, match=f"secret {SECRET} is not in Secrets Manager") as refused:
        world.service.plan(StartArgs(function=FN, version="2"), slack_user(STARTER))
    assert [r.name for r in refused.value.report.failed] == ["secret"]
    assert world.alias() == ("1", {})
    assert world.store.live_for(FN, "production") is None


def test_an_approver_may_override_a_red_check_with_a_reason_which_is_audited() -> None:
    world = world_with(broken())
    args = StartArgs(
        function=FN, version="2", override_preflight="secret moves in INC-7; URL is set directly"
    )
    plan = world.service.plan(args, slack_user(APPROVER))
    assert plan.preflight is not None and not plan.preflight.ok
    assert plan.preflight.override_reason == "secret moves in INC-7; URL is set directly"
    detail = world.store.audit_for(plan.deployment.id)[0].detail["preflight"]
    assert detail["overridden_by"] == plan.preflight.overridden_by and "UAPPROVER1" in detail["overridden_by"]
    assert detail["override_reason"] == "secret moves in INC-7; URL is set directly"
    world.service.confirm(plan.deployment.id, slack_user(APPROVER))
    assert world.alias() == ("1", {"2": 0.05})


def test_someone_who_is_not_an_approver_cannot_override() -> None:
    world = world_with(broken())
    with pytest.raises(NotAuthorized):
        world.service.plan(
            StartArgs(function=FN, version="2", override_preflight="trust me"), slack_user("UOUTSIDER")
        )


def test_override_alarms_also_covers_the_alarms_quiet_check() -> None:
    fake = ready()
    fake.firing[FN] = ["lego-api-5xx"]
    world = world_with(fake)
    with pytest.raises(PreflightFailed):
        world.service.plan(StartArgs(function=FN, version="2"), slack_user(APPROVER))
    plan = world.service.plan(
        StartArgs(function=FN, version="2", override_alarms="flaky, INC-42"), slack_user(APPROVER)
    )
    assert plan.preflight is not None and [r.name for r in plan.preflight.failed] == ["alarms_quiet"]
    assert plan.preflight.overridden_by is None


def test_publish_is_checked_on_latest_with_its_changes_before_anything_is_published() -> None:
    world = world_with(ready())
    assert world.traffic.version_exists(FN, "3") is False
    with pytest.raises(PreflightFailed, match="REDIS_URL is not set on \\$LATEST"):
        world.service.plan(
            StartArgs(function=FN, publish=True, unset_env=("REDIS_URL",)), slack_user(STARTER)
        )
    assert world.traffic.version_exists(FN, "3") is False  # refused before publishing


def test_a_policy_without_checks_still_checks_the_function_and_blocks_nothing_else() -> None:
    world = make_world(policy_with(), preflight=FakePreflight())
    with pytest.raises(PreflightFailed, match="function production-lego-api does not exist"):
        world.service.plan(StartArgs(function=FN, version="2"), slack_user(STARTER))


# ---------------------------------------------------------------- the CLI
def cli(world: World, line: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(line.split(), world.service, cli_actor("maria"), Console(out=out, err=err, ask=lambda _q: "y"))
    return code, out.getvalue(), err.getvalue()


def test_cli_preflight_exits_0_when_every_check_passes_or_warns() -> None:
    fake = ready()
    fake.caches.clear()  # ⚠️ only
    code, out, _ = cli(world_with(fake), f"preflight {FN} 2")
    assert code == 0
    assert "preflight of production-lego-api:production v2: 8 ✅ · 1 ⚠️" in out
    assert "⚠️ Security groups reach the cache" in out


def test_cli_preflight_exits_3_when_a_check_is_red_and_prints_json_with_each_result() -> None:
    code, out, _ = cli(world_with(broken()), f"--json preflight {FN} 2")
    assert code == 3
    data = json.loads(out)
    assert data["ok"] is False
    assert {r["name"]: r["status"] for r in data["results"]}["secret"] == "fail"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("preflight", "missing function"),
        (f"preflight {FN} two", "version 'two' must be a published version number"),
        ("preflight not/a/function", "is not a Lambda function name"),
        ("preflight some-other-function", "not listed in the canary policy"),
    ],
)
def test_cli_preflight_exits_2_on_bad_input_with_the_usage_line(line: str, words: str) -> None:
    code, _, err = cli(world_with(ready()), line)
    assert code == 2
    assert words in err and "usage: preflight FUNCTION [VERSION] [--alias ALIAS]" in err


def test_cli_preflight_exits_1_when_aws_fails() -> None:
    class Failing(FakePreflight):
        def gather(self, request: PreflightRequest, needs: Any) -> Any:
            raise AwsFailure("Lambda GetAlias failed: ThrottlingException")

    code, _, err = cli(world_with(Failing()), f"preflight {FN}")
    assert code == 1 and "ThrottlingException" in err


def test_cli_start_refused_by_preflight_exits_3_and_shows_the_override() -> None:
    code, _, err = cli(world_with(broken()), f"--yes start {FN} 2")
    assert code == 3
    assert "preflight failed" in err and "--override-preflight REASON" in err


def test_cli_start_shows_the_preflight_in_its_plan() -> None:
    code, out, _ = cli(world_with(ready()), f"--yes start {FN} 2")
    assert code == 0
    assert "preflight of production-lego-api:production v2: 9 ✅" in out
    assert "✅ Secret in Secrets Manager: secret production/lego-api/redis exists" in out


def test_the_parser_reads_override_preflight_and_wants_a_reason() -> None:
    args = parse_text(f"start {FN} 2 --override-preflight 'INC-7'")
    assert isinstance(args, StartArgs) and args.override_preflight == "INC-7"
    with pytest.raises(UsageError, match="--override-preflight needs a reason"):
        parse_text(f"start {FN} 2 --override-preflight ' '")


# ---------------------------------------------------------------- Slack
def test_slack_preflight_answers_the_asker_with_each_check_escaped() -> None:
    with slack_world(**POLICY) as sw:
        fake = ready()
        fake.firing[FN] = ["<!channel> alarm"]
        sw.world.service.starting.preflight = fake
        sw.command(f"preflight {FN} 2")
        answer = sw.last_response()
    assert answer["response_type"] == "ephemeral"
    text = sw.text_of(answer)
    assert "🔴 *No alarm firing*: in ALARM: &lt;!channel&gt; alarm" in text
    assert "✅ *Secret in Secrets Manager*" in text
    assert "would block `start`" in text


def test_slack_start_refused_by_preflight_shows_the_checklist_and_no_start_button() -> None:
    with slack_world(**POLICY) as sw:
        sw.world.service.starting.preflight = broken()
        sw.command(f"start {FN} 2")
        answer = sw.last_response()
    text = sw.text_of(answer)
    assert "Start refused" in text and "--override-preflight REASON" in text
    assert sw.buttons(answer.get("blocks", [])) == {}
    assert sw.world.alias() == ("1", {})


def test_slack_start_preview_shows_the_preflight_above_the_buttons() -> None:
    with slack_world(**POLICY) as sw:
        sw.world.service.starting.preflight = ready()
        sw.command(f"start {FN} 2")
        answer = sw.last_response()
    text = sw.text_of(answer)
    assert "*Preflight* · preflight of production-lego-api:production v2: 9 ✅" in text
    assert "canary_start_confirm" in sw.buttons(answer["blocks"])
