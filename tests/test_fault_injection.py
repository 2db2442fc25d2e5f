"""Crash and outage tests of the real `canary-bot serve` (issue 9): durable actions, end to end.

The process under test is the console script, configured by environment only, talking to moto through the
fault proxy and to a fake Slack Web API (tests/support/serve_process.py). Two kinds of tests:

- one test per finding of issue 9, each failing on the code as it was at 1e1fd9f;
- scripted stories (start, soak tick, next step, weight, promote, rollback, alarm rollback) with a SIGKILL at
  20 points. After each restart: the alias (read from moto, not through the proxy) is what the store says
  the deployment routes; no deployment is lost; no action's UpdateAlias is applied twice (proxy counts);
  no Slack message is posted twice; a rollback completes within a reconcile period + a lease + a margin.

Process start-ups dominate the time (~3-6 s each on 2 shared cores), so the kill points of one story run in
one world, one restart each, and the stories are the parameters.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from bot import views
from bot.model import Deployment, State
from canary_demo.fake_slack import RecordedCall, SlackHold
from tests.support.fault_proxy import Answer, Hold, ProxiedRequest, iter_receipts, server_error, throttle
from tests.support.moto_server import running_moto
from tests.support.serve_process import (
    APPROVER,
    APPROVER_2,
    FN,
    RECOVERY_SECONDS,
    STARTER,
    TICK_EVERY,
    ServeWorld,
    policy_yaml,
    serve_world,
    wait_for,
)

pytestmark = pytest.mark.faults

HELD_SECONDS = 20.0  # how long a test waits for the bot to reach a held call
Routing = tuple[str, dict[str, float]]
CANARY_5: Routing = ("1", {"2": 0.05})
STABLE: Routing = ("1", {})
PROMOTED: Routing = ("2", {})


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with running_moto() as url:
        yield url


@contextmanager
def _world(moto_url: str, tmp_path: Path, policy: str | None = None) -> Iterator[ServeWorld]:
    with serve_world(moto_url, tmp_path, policy=policy) as w:
        w.start()
        yield w


@pytest.fixture
def world(moto_url: str, tmp_path: Path) -> Iterator[ServeWorld]:
    with _world(moto_url, tmp_path) as w:
        yield w


def _applied(w: ServeWorld) -> int:
    return w.bot_alias_writes()


def _rolled_back(w: ServeWorld, deployment_id: str, timeout: float = RECOVERY_SECONDS) -> Deployment:
    """Wait until the alias is 100% stable and the deployment rolled_back."""

    def done() -> Deployment | None:
        d = w.deployment(deployment_id)
        return d if d.state is State.ROLLED_BACK and w.alias() == STABLE else None

    return wait_for(done, timeout, f"{deployment_id} rolled back and the alias 100% v1", w)


def _no_duplicates(w: ServeWorld) -> None:
    duplicated = w.duplicated_messages()
    assert not duplicated, f"Slack messages posted twice: {duplicated}\n{w.describe()}"


# ================================================================ one test per finding of issue 9
def test_an_alarm_rollback_cut_by_a_crash_is_completed_after_the_restart(world: ServeWorld) -> None:
    """Finding: the dead process's claim on the SNS MessageId made the redelivered alarm a 'duplicate'."""
    d = world.start_canary()
    held = world.proxy.hold("UpdateAlias")
    world.publish_alarm()
    held.wait_held(HELD_SECONDS)
    world.kill9()
    assert world.alias() == CANARY_5
    world.restart()
    _rolled_back(world, d.id)
    assert _applied(world) == 2, f"start + one rollback write expected\n{world.describe()}"
    wait_for(lambda: world.queue_depth() == 0 or None, RECOVERY_SECONDS, "the alarm message deleted", world)
    _no_duplicates(world)


@pytest.mark.parametrize("decided_by", ["soak judge", "alarm"])
def test_a_rollback_whose_alias_write_was_throttled_completes_once_the_throttling_stops(
    moto_url: str, tmp_path: Path, decided_by: str
) -> None:
    """Finding: ROLLING_BACK was never ticked again, and an alarm rollback that used up its retries was only
    escalated, never retried."""
    with _world(moto_url, tmp_path, policy_yaml(period="2s")) as world:
        _throttled_rollback_completes(world, decided_by)


def _throttled_rollback_completes(world: ServeWorld, decided_by: str) -> None:
    d = world.start_canary()
    throttled = world.proxy.fail("UpdateAlias", throttle())
    seen = world.proxy.seen("UpdateAlias")
    if decided_by == "alarm":
        world.publish_alarm()
    else:
        world.metrics.canary_error_rate = 0.25  # > 1%: the next judged period breaches
    # One whole call of the bot failed: botocore's five attempts, all throttled.
    world.proxy.wait_seen("UpdateAlias", seen + 5, timeout=40)
    world.proxy.remove(throttled)
    stopped = time.monotonic()
    _rolled_back(world, d.id, timeout=RECOVERY_SECONDS + 10)
    assert time.monotonic() - stopped < RECOVERY_SECONDS + 10
    assert _applied(world) == 2, world.describe()
    _no_duplicates(world)


def test_a_start_whose_alias_write_landed_before_a_crash_converges_to_a_canary_with_a_thread(
    world: ServeWorld,
) -> None:
    """Finding: the alias was 95/5 while the store said `planned`, for ever: an unwatched split."""
    buttons = world.preview()
    held = world.proxy.hold("UpdateAlias", when="after")  # the write lands; its answer never comes back
    world.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)
    held.wait_held(HELD_SECONDS)
    world.kill9()
    assert world.alias() == CANARY_5
    world.restart()
    d = world.wait_state(State.CANARY, timeout=RECOVERY_SECONDS)
    assert world.alias() == CANARY_5
    assert _applied(world) == 1, f"the landed write must not be applied again\n{world.describe()}"
    d = wait_for(
        lambda: ((found := world.deployment(d.id)).thread_ts and found) or None,
        RECOVERY_SECONDS,
        "the canary's thread in Slack",
        world,
    )
    assert any(m.ts == d.thread_ts for m in world.slack.messages())
    _no_duplicates(world)


def test_an_alias_changed_behind_the_bot_holds_the_canary_within_a_tick_and_is_never_overwritten(
    world: ServeWorld,
) -> None:
    """Finding: ticks never read the alias; the soak kept reporting 'v2 at 5%' over a 50% split."""
    d = world.start_canary()
    world.change_alias_behind_the_bot("1", {"2": 0.5})
    changed = time.monotonic()
    world.wait_state(State.HELD, timeout=TICK_EVERY + 5)
    assert time.monotonic() - changed < TICK_EVERY + 5
    wait_for(
        lambda: "50%" in world.thread_text(world.deployment(d.id)) or None, 10, "the thread to say 50%", world
    )
    time.sleep(3 * TICK_EVERY)  # a few more ticks: still nothing written
    assert world.alias() == ("1", {"2": 0.5})
    assert _applied(world) == 1, world.describe()
    assert world.deployment(d.id).state is State.HELD


def test_two_alarms_for_one_canary_on_two_replicas_give_one_alias_write_and_no_failure_page(
    world: ServeWorld,
) -> None:
    """Finding: error-rate and p95 alarms of one canary, on replicas sharing the store, gave two UpdateAlias
    calls and a false 'automatic rollback FAILED' page."""
    world.start_replica()
    d = world.start_canary()
    held = world.proxy.hold("UpdateAlias")
    world.publish_alarm(metric="error-rate")
    held.wait_held(HELD_SECONDS)  # one replica is inside its rollback; its poller is busy
    world.publish_alarm(metric="p95")  # so the other replica takes this one
    wait_for(lambda: world.visible_messages() == 0 or None, 15, "the second alarm taken", world)
    time.sleep(2 * TICK_EVERY)
    held.release()
    _rolled_back(world, d.id)
    wait_for(lambda: world.queue_depth() == 0 or None, RECOVERY_SECONDS, "both alarm messages handled", world)
    time.sleep(1)
    assert _applied(world) == 2, f"start + ONE rollback write expected\n{world.describe()}"
    posted = json.dumps([m.text for m in world.slack.messages()] + [m.blocks for m in world.slack.messages()])
    assert "FAILED" not in posted, world.describe()
    rolled_back = [m for m in world.slack.messages() if "Rolled back" in (m.text or "")]
    assert len(rolled_back) == 1, (
        f"one rollback, one story: {[m.text for m in rolled_back]}\n{world.describe()}"
    )
    _no_duplicates(world)


def test_a_failed_alias_read_during_a_promote_does_not_block_the_next_promote(world: ServeWorld) -> None:
    """Finding: the action claim leaked when GetAlias failed; every later promote was 'in progress'."""
    world.start_canary()
    buttons = world.prompt(f"promote {FN}")
    failing = world.proxy.fail("GetAlias", server_error())
    first = world.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=APPROVER)
    world.response(first, timeout=40)  # the promote gave up (its answer may be an error or 'will retry')
    world.proxy.remove(failing)
    time.sleep(TICK_EVERY)
    d = world.latest()
    assert d is not None
    if d.state is not State.PROMOTED:  # the bot did not finish the promote by itself: a person tries again
        again = world.prompt(f"promote {FN}")
        second = world.click(views.ACTION_PROMOTE, again[views.ACTION_PROMOTE], user=APPROVER_2)
        answer = world.response(second)
        assert "in progress" not in json.dumps(answer), f"the second promote was blocked: {answer}"
    world.wait_state(State.PROMOTED, timeout=RECOVERY_SECONDS)
    assert world.alias() == PROMOTED
    assert _applied(world) == 2, world.describe()


def test_failing_metrics_are_said_in_the_thread_and_a_soak_without_figures_ends_inconclusive(
    moto_url: str, tmp_path: Path
) -> None:
    """Finding: GetMetricData failing on every tick left the canary soaking past its end, 'soak complete'
    was posted, and nothing said the metrics were failing."""
    with _world(moto_url, tmp_path, policy_yaml(soak="8s", period="2s")) as w:
        w.proxy.fail("GetMetricData", server_error())
        d = w.start_canary()
        assert d.soak_ends_at is not None
        wait_for(
            lambda: (
                (
                    "metrics" in w.thread_text(w.deployment(d.id)).lower()
                    and "fail" in w.thread_text(w.deployment(d.id)).lower()
                )
                or None
            ),
            25,
            "the thread to say the metrics are failing",
            w,
        )
        held = w.wait_state(State.HELD, timeout=25)
        assert held.id == d.id
        time.sleep(2 * TICK_EVERY)  # ticks post due soak reports before deciding: let a few more run
        said = w.thread_text(w.deployment(d.id)).lower()
        assert "soak complete" not in said and "soak passed" not in said, said
        assert w.deployment(d.id).state is State.HELD
        assert w.alias() == CANARY_5


def test_a_rollback_click_is_acted_on_when_the_bot_restarts_while_slack_is_down(world: ServeWorld) -> None:
    """Finding: restarted during a Slack outage, Bolt's auth.test on the request path refused every request,
    rollback clicks included ('please reinstall this app')."""
    d = world.start_canary()
    buttons = world.prompt(f'rollback {FN} --reason "error rate 2.5%"', user=APPROVER)
    world.kill9()
    world.slack.fail_all(500)  # every method, auth.test and response_url posts included
    world.restart()
    clicked = time.monotonic()
    world.click(views.ACTION_ROLLBACK, buttons[views.ACTION_ROLLBACK], user=APPROVER)
    _rolled_back(world, d.id)
    assert time.monotonic() - clicked < RECOVERY_SECONDS
    assert _applied(world) == 2, world.describe()


def test_a_message_that_fails_past_the_clients_retries_is_delivered_once_slack_is_back(
    world: ServeWorld,
) -> None:
    """Finding: a Slack message still failing after its retries was dropped; the README promised an outbox."""
    d = world.start_canary()
    posts = len(world.slack.calls("chat.postMessage"))
    world.slack.fail_all(500, methods=["chat.postMessage"])
    world.command(f"weight {FN} 25%", user=APPROVER)
    wait_for(lambda: world.alias() == ("1", {"2": 0.25}) or None, 15, "the weight changed", world)
    # The WebClient's own retries (4 attempts, ~3.5 s) run out, and then some.
    wait_for(lambda: len(world.slack.calls("chat.postMessage")) >= posts + 4 or None, 20, "retries", world)
    time.sleep(2)
    before = {m.ts for m in world.slack.messages()}
    world.slack.recover()

    def weight_posts() -> list[str]:
        return [
            (m.text or "") + json.dumps(m.blocks or [])
            for m in world.slack.messages()
            if m.ts not in before
            and m.thread_ts == world.deployment(d.id).thread_ts
            and "25%" in (m.text or "") + json.dumps(m.blocks or [])
        ]

    wait_for(lambda: weight_posts() or None, RECOVERY_SECONDS + 10, "the weight message delivered", world)
    time.sleep(3 * TICK_EVERY)
    assert len(weight_posts()) == 1, weight_posts()
    _no_duplicates(world)


def test_a_rollback_button_drawn_before_a_late_parent_message_still_rolls_back(world: ServeWorld) -> None:
    """Found by the kill-point stories: the parent message lost to a crash is posted after the restart (the
    outbox), and saving its ts bumped the deployment's revision, so a Roll back button drawn in between was
    refused as 'out of date' though nothing about the canary had changed."""
    buttons = world.preview()
    parent = world.slack.hold_next("chat.postMessage", lambda call: not call.params.get("thread_ts"))
    world.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)
    parent.wait_held(HELD_SECONDS)
    world.kill9()
    world.slack.fail_all(500, methods=["chat.postMessage"])  # Slack is slow to come back for posts
    world.restart()
    d = world.wait_state(State.CANARY, timeout=RECOVERY_SECONDS)
    rollback = world.prompt(f'rollback {FN} --reason "error rate 2.5%"', user=APPROVER)
    world.slack.recover()  # the parent message goes out now, and its ts is saved
    wait_for(
        lambda: world.deployment(d.id).thread_ts, RECOVERY_SECONDS + 10, "the parent message posted", world
    )
    key = world.click(views.ACTION_ROLLBACK, rollback[views.ACTION_ROLLBACK], user=APPROVER)
    answer = world.response(key)
    assert "out of date" not in json.dumps(answer), answer
    _rolled_back(world, d.id)


# ================================================================ kill points in scripted stories
@dataclass
class Story:
    """Runs kill points in one world and checks the invariants after each restart.

    A point that fails is recorded, the world is thrown away and rebuilt (a fresh store, moto reseeded), and
    the story goes on: every point is tried, and the test fails at the end listing each failed point."""

    w: ServeWorld
    point: str = ""
    applied_before: int = 0
    seen_ids: set[str] = field(default_factory=set)
    points: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    armed: dict[str, Hold | SlackHold] = field(default_factory=dict)  # holds armed ahead for the next point

    def run(self, point: str, body: Callable[[], object]) -> None:
        self.point = point
        self.points.append(point)
        try:
            body()
        except AssertionError as exc:
            lines = str(exc).splitlines()
            self.failures.append(f"[{point}] " + "\n    ".join(lines[:60]))
            self.seen_ids.clear()
            self.armed.clear()
            self.w.fresh()

    # -- preconditions (after a failed point the world is fresh: nothing live, alias 100% v1)
    def live(self) -> Deployment | None:
        d = self.w.latest()
        return d if d is not None and d.is_live else None

    def ensure_canary(self) -> Deployment:
        d = self.live()
        if d is not None and d.state is State.CANARY:
            return d
        if d is not None and d.state is not State.PLANNED:
            self.w.fresh()
        return self.w.start_canary()

    def ensure_nothing_live(self) -> None:
        d = self.live()
        if d is not None and d.state is not State.PLANNED:
            self.w.fresh()

    # -- the crash and the checks
    def crash(
        self,
        trigger: Callable[[], object],
        *,
        hold: tuple[str, Literal["before", "after"]] | None = None,
        slack_hold: tuple[str, Callable[[RecordedCall], bool] | None] | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Arm the hold, run the trigger, SIGKILL once the bot is inside the held call (or at once), restart.
        `then` runs while the bot is down (to arm the next point's hold before the bot can get there)."""
        self.applied_before = _applied(self.w)
        self.seen_ids |= {d.id for d in self.w.deployments()}
        proxy_hold = self.w.proxy.hold(hold[0], when=hold[1]) if hold else None
        slack_held = self.w.slack.hold_next(slack_hold[0], slack_hold[1]) if slack_hold else None
        trigger()
        try:
            if proxy_hold is not None:
                proxy_hold.wait_held(HELD_SECONDS)
            if slack_held is not None:
                slack_held.wait_held(HELD_SECONDS)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.w.describe()}") from None
        self.w.kill9()
        self.w.proxy.clear()
        if then is not None:
            then()
        self.w.restart()

    def check(
        self,
        *,
        states: set[State],
        alias: list[tuple[str, dict[str, float]]],
        applied: set[int],
        next_change_held: Hold | None = None,
    ) -> Deployment:
        """The invariants after a restart, and where this point's story may have got to: one of `states`,
        one of the `alias` routings, and `applied` UpdateAlias calls reaching AWS for the point's action.
        `next_change_held`: the next point's hold, armed ahead; once the bot is inside it, its traffic change
        is open (and stays open) by the test's doing, so the world counts as settled without it."""
        w = self.w
        held = next_change_held
        d = w.wait_consistent(open_change_ok=None if held is None else lambda: held.is_held)
        assert d is not None, f"no deployment\n{w.describe()}"
        ids = {x.id for x in w.deployments()}
        assert self.seen_ids <= ids, f"deployments lost: {self.seen_ids - ids}\n{w.describe()}"
        stuck = [x.id for x in w.deployments() if x.state is State.ROLLING_BACK]
        assert not stuck, f"rollback not completed: {stuck}\n{w.describe()}"
        assert d.state in states, f"state {d.state.value}, expected one of {sorted(states)}\n{w.describe()}"
        now = w.alias()
        assert now in alias, f"alias {now}, expected one of {alias}\n{w.describe()}"
        delta = _applied(w) - self.applied_before
        assert delta in applied, (
            f"{delta} UpdateAlias applied for one action (expected {applied})\n{w.describe()}"
        )
        duplicated = w.duplicated_messages()
        assert not duplicated, f"Slack messages posted twice: {duplicated}\n{w.describe()}"
        return d


def _promote(w: ServeWorld, user: str = APPROVER, key: str | None = None) -> Callable[[], object]:
    buttons = w.prompt(f"promote {FN}", user=user)
    return lambda: w.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=user, key=key)


def _rollback(w: ServeWorld, reason: str = "p99 430 ms") -> Callable[[], object]:
    buttons = w.prompt(f'rollback {FN} --reason "{reason}"', user=APPROVER)
    return lambda: w.click(views.ACTION_ROLLBACK, buttons[views.ACTION_ROLLBACK], user=APPROVER)


def _start(w: ServeWorld, version: str = "2") -> Callable[[], object]:
    buttons = w.preview(version)
    return lambda: w.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)


def _weight(w: ServeWorld, percent: int) -> Callable[[], object]:
    return lambda: w.command(f"weight {FN} {percent}%", user=APPROVER)


def story_steps_and_promote(s: Story) -> None:
    w = s.w

    def start_held_before() -> None:
        s.ensure_nothing_live()
        s.crash(_start(w), hold=("UpdateAlias", "before"))
        s.check(states={State.CANARY}, alias=[CANARY_5], applied={1})

    def weight_answer_lost() -> None:
        s.ensure_canary()
        s.crash(_weight(w, 25), hold=("UpdateAlias", "after"))
        s.check(states={State.CANARY}, alias=[("1", {"2": 0.25})], applied={1})

    def weight_after_ack() -> None:
        s.ensure_canary()
        before = w.alias()
        s.crash(_weight(w, 50))
        s.check(states={State.CANARY}, alias=[before, ("1", {"2": 0.5})], applied={0, 1})

    def promote_held_before() -> None:
        s.ensure_canary()
        s.crash(_promote(w), hold=("UpdateAlias", "before"))
        s.check(states={State.PROMOTED}, alias=[PROMOTED], applied={1})

    s.run("start: UpdateAlias held before it reaches AWS", start_held_before)
    s.run("weight 25%: UpdateAlias landed, its answer lost", weight_answer_lost)
    s.run("weight 50%: killed right after the slash command is acked", weight_after_ack)
    s.run("promote: UpdateAlias held before it reaches AWS", promote_held_before)


def story_manual_start_and_rollback(s: Story) -> None:
    w = s.w

    def start_answer_lost() -> None:
        s.ensure_nothing_live()
        s.crash(_start(w), hold=("UpdateAlias", "after"))
        s.check(states={State.CANARY}, alias=[CANARY_5], applied={1})

    def rollback(when: Literal["before", "after"]) -> Callable[[], None]:
        def point() -> None:
            s.ensure_canary()
            s.crash(_rollback(w), hold=("UpdateAlias", when))
            s.check(states={State.ROLLED_BACK}, alias=[STABLE], applied={1})

        return point

    def start_parent_message_held() -> None:
        s.ensure_nothing_live()
        s.crash(_start(w), slack_hold=("chat.postMessage", lambda call: not call.params.get("thread_ts")))
        s.check(states={State.CANARY}, alias=[CANARY_5], applied={1})

    def start_after_ack() -> None:
        s.ensure_nothing_live()
        s.crash(_start(w))
        s.check(states={State.CANARY, State.PLANNED}, alias=[CANARY_5, STABLE], applied={0, 1})

    def promote_answer_held() -> None:
        s.ensure_canary()
        key = "promote-answer-held"  # the hold is for this click's answer, not an earlier one replayed
        s.crash(_promote(w, key=key), slack_hold=("response_url", lambda call: call.path.endswith(key)))
        s.check(states={State.PROMOTED}, alias=[PROMOTED], applied={1})

    s.run("start: UpdateAlias landed, its answer lost", start_answer_lost)
    s.run("rollback click: UpdateAlias held before it reaches AWS", rollback("before"))
    s.run("start: the parent message held at Slack", start_parent_message_held)
    s.run("rollback click: UpdateAlias landed, its answer lost", rollback("after"))
    s.run("start: killed right after the Start click is acked", start_after_ack)
    s.run("promote click: its response_url answer held at Slack", promote_answer_held)


def story_alarm_rollbacks(s: Story) -> None:
    w = s.w

    def alarm_rollback(
        hold: tuple[str, Literal["before", "after"]] | None = None,
        slack_hold: tuple[str, Callable[[RecordedCall], bool] | None] | None = None,
        trigger: Callable[[], object] | None = None,
    ) -> Callable[[], None]:
        def point() -> None:
            s.ensure_canary()
            s.crash(trigger or w.publish_alarm, hold=hold, slack_hold=slack_hold)
            s.check(states={State.ROLLED_BACK}, alias=[STABLE], applied={1})
            wait_for(lambda: w.queue_depth() == 0 or None, RECOVERY_SECONDS, "the alarm messages deleted", w)

        return point

    def received_then_killed() -> None:
        armed = {"on": True}
        bot = w.bot
        assert bot is not None and bot.proc is not None
        pid = bot.proc.pid

        def kill_on_alarm(request: ProxiedRequest, answer: Answer) -> None:
            if armed["on"] and request.operation == "ReceiveMessage" and list(iter_receipts(answer)):
                armed["on"] = False
                os.kill(pid, signal.SIGKILL)

        w.proxy.observe(kill_on_alarm, delivered=True)
        w.publish_alarm()
        wait_for(lambda: not armed["on"] or None, 15, "the alarm received", w)

    def two_alarms() -> None:
        w.publish_alarm(metric="error-rate")
        w.publish_alarm(metric="p95")

    s.run(
        "alarm rollback: UpdateAlias held before it reaches AWS",
        alarm_rollback(hold=("UpdateAlias", "before")),
    )
    s.run(
        "alarm rollback: UpdateAlias landed, its answer lost", alarm_rollback(hold=("UpdateAlias", "after"))
    )
    s.run("alarm: handled, its SQS DeleteMessage held", alarm_rollback(hold=("DeleteMessage", "before")))
    s.run("alarm rollback: the alert held at Slack", alarm_rollback(slack_hold=("chat.postMessage", None)))
    s.run("alarm: killed right after the message is received", alarm_rollback(trigger=received_then_killed))
    s.run(
        "two alarms: UpdateAlias held before it reaches AWS",
        alarm_rollback(hold=("UpdateAlias", "before"), trigger=two_alarms),
    )


def story_soak_steps(s: Story) -> None:
    """Soak ends come by themselves: a point's hold is armed while the bot is down (or right after the
    canary starts), before the bot can get there."""
    w, armed = s.w, s.armed

    def arm_next_step() -> None:
        armed["next"] = w.proxy.hold("UpdateAlias")

    def arm_approval_prompt() -> None:
        armed["prompt"] = w.slack.hold_next(
            "chat.postMessage", lambda call: "Promote" in json.dumps(call.params)
        )

    def metrics_held() -> None:
        s.ensure_canary()
        s.crash(lambda: None, hold=("GetMetricData", "before"), then=arm_next_step)
        # On a slow machine the soak may end during the restart: the next step is then held already.
        held = armed["next"]
        assert isinstance(held, Hold)
        d = s.check(states={State.CANARY}, alias=[CANARY_5], applied={0}, next_change_held=held)
        assert d.step_index == 0, d

    def next_step_held() -> None:
        if "next" not in armed:  # the point before failed: start again, and arm before the soak ends
            s.ensure_canary()
            arm_next_step()
        s.crash(lambda: armed.pop("next").wait_held(HELD_SECONDS), then=arm_approval_prompt)
        d = s.check(states={State.CANARY}, alias=[("1", {"2": 0.25})], applied={1})
        assert d.step_index == 1, d

    def approval_prompt_held() -> None:
        if "prompt" not in armed:
            s.ensure_canary()
            arm_approval_prompt()
            wait_for(lambda: w.alias() == ("1", {"2": 0.25}) or None, 20, "the next step", w)
        s.crash(lambda: armed.pop("prompt").wait_held(HELD_SECONDS * 2))
        s.check(states={State.AWAITING_APPROVAL}, alias=[("1", {"2": 0.25})], applied={0})

    def promote_after_ack() -> None:
        d = s.live()
        if d is None or d.state is not State.AWAITING_APPROVAL:
            s.w.fresh()
            s.w.start_canary()
            s.w.wait_state(State.AWAITING_APPROVAL, timeout=30)
        before = w.alias()
        s.crash(_promote(w))
        s.check(states={State.PROMOTED, State.AWAITING_APPROVAL}, alias=[PROMOTED, before], applied={0, 1})

    s.run("soak tick: GetMetricData held", metrics_held)
    s.run("soak end -> next step: UpdateAlias held before it reaches AWS", next_step_held)
    s.run("last soak end -> the approval prompt held at Slack", approval_prompt_held)
    s.run("promote: killed right after the click is acked", promote_after_ack)


STORIES: dict[str, tuple[Callable[[Story], None], str | None, int]] = {
    "steps-and-promote": (story_steps_and_promote, None, 4),
    "manual-start-and-rollback": (story_manual_start_and_rollback, None, 6),
    "alarm-rollbacks": (story_alarm_rollbacks, None, 6),
    "soak-steps": (story_soak_steps, policy_yaml(steps="[5%, 25%]", soak="6s", period="2s"), 4),
}


# Two stories at a time, each in its own moto and world: most of a story's time is waiting (a dead process's
# lease running out, a soak ending), and two of them overlap well even on 2 cores.
STORY_PAIRS = [("manual-start-and-rollback", "steps-and-promote"), ("alarm-rollbacks", "soak-steps")]


def _run_story(name: str, tmp_path: Path) -> Story:
    run, policy, _ = STORIES[name]
    tmp_path.mkdir()
    with running_moto() as url, _world(url, tmp_path, policy) as w:
        s = Story(w)
        run(s)
    return s


@pytest.mark.parametrize("pair", STORY_PAIRS, ids=["+".join(pair) for pair in STORY_PAIRS])
def test_sigkill_at_every_point_of_the_story_leaves_alias_and_store_agreeing(
    tmp_path: Path, pair: tuple[str, str]
) -> None:
    with ThreadPoolExecutor(len(pair), thread_name_prefix="story") as pool:
        running = {name: pool.submit(_run_story, name, tmp_path / name) for name in pair}
        stories = {name: future.result(timeout=600) for name, future in running.items()}
    failures = []
    for name, s in stories.items():
        assert len(s.points) == STORIES[name][2], s.points
        failures += [f"{name}: {failure}" for failure in s.failures]
    total = sum(len(s.points) for s in stories.values())
    assert not failures, f"{len(failures)} of {total} kill points failed:\n" + "\n".join(failures)


def test_the_stories_kill_the_bot_at_twenty_points() -> None:
    assert sum(points for _, _, points in STORIES.values()) >= 20
    assert sorted(name for pair in STORY_PAIRS for name in pair) == sorted(STORIES)
