"""SoakRunner mechanics: metrics windows, one round per tick, failures, idempotence, restarts, reports."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.actors import cli_actor
from bot.composition import soak_runner
from bot.config import Policy
from bot.events import (
    AnyEvent,
    DecisionNeeded,
    MessageRef,
    RecordingNotifier,
    SoakReport,
    StateNoted,
    TrafficChanged,
)
from bot.judge import DecisionKind, Outcome
from bot.model import Deployment, PeriodFigures, State, Thresholds, VersionFigures
from bot.ports import AwsFailure, WindowRequest
from bot.soak import align_down, default_chart, due_report, same_figures
from bot.verbs import StartArgs
from canary_demo.fakes.metrics import FakeMetrics
from tests.support.canary_core import started as core_started
from tests.support.traffic_sim import SoakWorld, TrafficSim, soak_world
from tests.support.world import ALIAS, FN, make_world, policy_with

ORDERS = "orders-api"
MARIA = cli_actor("maria")
SRE = cli_actor("sre")


def soaking(**policy: Any) -> tuple[SoakWorld, str]:
    sw = soak_world(**policy)
    return sw, sw.world.start()


def audit_actions(sw: SoakWorld, deployment_id: str) -> list[str]:
    return [r.action for r in sw.world.store.audit_for(deployment_id) if r.phase in ("event", "done")]


# ---------------------------------------------------------------- several canaries
def two_canaries(**rules: Any) -> tuple[SoakWorld, str, str]:
    """The seed function and orders-api, both canarying v2 against v1, with the same rules."""
    rules = {"judge": "threshold", **rules}
    entry = {"alias": ALIAS, "log_group": "/aws/lambda/orders-api", **rules}
    policy = Policy.model_validate(
        {
            "defaults": {},
            "functions": {FN: {**policy_with().functions[FN], **rules}, ORDERS: entry},
        }
    )
    sw = soak_world(policy)
    sw.world.traffic.add_function(ORDERS, versions=["1", "2"])
    sw.world.traffic.add_alias(ORDERS, ALIAS, "1")
    sw.sim = TrafficSim(
        traffic=sw.world.traffic,
        metrics=sw.metrics,
        clock=sw.world.clock,
        runner=sw.runner,
        notifier=sw.world.notifier,
        targets=[(FN, ALIAS), (ORDERS, ALIAS)],
    )
    first = sw.world.start()
    plan = sw.world.service.plan(StartArgs(function=ORDERS, version="2"), MARIA)
    sw.world.service.confirm(plan.deployment.id, MARIA)
    return sw, first, plan.deployment.id


def test_one_metrics_round_per_tick_for_several_live_canaries() -> None:
    sw, first, second = two_canaries()

    sw.sim.run(30)

    # No complete period in the first 4 minutes: no round at all then.
    assert sw.metrics.calls == sw.sim.ticks - 4
    assert all({r.deployment_id for r in requests} == {first, second} for requests in sw.metrics.requests)
    assert {r.function for r in sw.metrics.requests[-1]} == {FN, ORDERS}


def test_one_canarys_failure_does_not_stop_the_others() -> None:
    sw, drifted, healthy = two_canaries(steps=["5%", "25%"], soak="10m")
    sw.sim.run(9)
    sw.world.traffic.force_change(FN, ALIAS, "1", {"2": 0.1})  # someone edits the alias by hand

    outcomes = {o.deployment_id: o for o in sw.sim.minute()}

    # The tick reads the alias first: the drifted canary is held before anything is decided or written.
    assert outcomes[drifted].kind is DecisionKind.CONTINUE
    assert sw.deployment(drifted).state is State.HELD
    assert sw.world.alias() == ("1", {"2": 0.1})
    assert outcomes[healthy].error is None
    assert sw.deployment(healthy).weight == 0.25


# ---------------------------------------------------------------- windows
def test_window_is_clock_aligned_and_holds_complete_periods_of_the_step_only() -> None:
    sw = soak_world()
    sw.sim.run(3, tick=False)
    did = sw.world.start()  # 14:03: the step straddles the 14:00-14:05 period
    sw.sim.run(2)  # 14:05: the first complete period began before the step

    assert sw.metrics.calls == 0

    sw.sim.run(5)  # 14:10: 14:05-14:10 is the step's first complete period
    [request] = sw.metrics.requests[-1]
    t = sw.world.clock.now()
    assert (request.start, request.end) == (t - timedelta(minutes=10), t)
    assert (request.period_seconds, request.log_group) == (300, "/aws/lambda/production-lego-api")
    assert (request.canary_version, request.stable_version) == ("2", "1")

    sw.world.clock.advance(timedelta(minutes=2, seconds=30))
    sw.runner.tick()
    assert sw.metrics.requests[-1][0].end == t  # 14:12:30: the 14:10-14:15 period is not over

    figures, verdicts = sw.runner.summary(sw.deployment(did))
    assert [f.start for f in figures] == [t - timedelta(minutes=5)]
    assert [v.start for v in verdicts] == [t - timedelta(minutes=5)]


def test_align_down_snaps_to_clock_multiples_of_the_period() -> None:
    moment = datetime(2026, 11, 28, 14, 7, 31, tzinfo=UTC)
    assert align_down(moment, timedelta(minutes=5)) == datetime(2026, 11, 28, 14, 5, tzinfo=UTC)
    assert align_down(moment, timedelta(minutes=1)) == datetime(2026, 11, 28, 14, 7, tzinfo=UTC)
    assert align_down(moment.replace(minute=5, second=0), timedelta(minutes=5)) == moment.replace(
        minute=5, second=0
    )


def test_nothing_live_means_no_metrics_call() -> None:
    sw = soak_world()
    assert sw.runner.tick() == []
    assert sw.runner.report() == 0
    assert sw.metrics.calls == 0


# ---------------------------------------------------------------- failures
def test_a_metrics_failure_adds_no_figures_and_changes_nothing() -> None:
    sw, did = soaking()
    sw.sim.behave("2", error_rate=0.05)
    sw.sim.run(9)
    before = sw.deployment(did)
    said = len(sw.world.notifier.events)
    sw.metrics.fail_next(AwsFailure("CloudWatch GetMetricData failed: Throttling"))

    [outcome] = sw.sim.minute()  # 14:10: the second failing period is over, but no figures

    assert outcome.kind is DecisionKind.CONTINUE  # judged on the stored figures: nothing new to act on
    assert outcome.error is not None and "Throttling" in outcome.error
    assert sw.deployment(did) == before
    assert len(sw.world.notifier.events) == said

    sw.sim.minute()  # metrics are back: the breach is acted on
    assert sw.deployment(did).state is State.ROLLED_BACK


def test_a_tick_writes_only_the_periods_whose_figures_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    sw, did = soaking()
    sw.sim.run(12)  # two complete periods stored
    stored = sw.world.store.figures_for(did)
    saved: list[list[datetime]] = []
    save = sw.world.store.save_figures

    def recording(deployment_id: str, figures: Sequence[PeriodFigures]) -> None:
        saved.append([f.start for f in figures])
        save(deployment_id, figures)

    monkeypatch.setattr(sw.world.store, "save_figures", recording)
    sw.sim.runner.tick()  # the same periods fetched again: nothing written
    sw.sim.run(2)  # 14:14: no period completed meanwhile
    assert saved == []

    sw.sim.minute()  # 14:15: the third period is over, only it is written
    assert saved == [[stored[-1].end]]
    assert sw.world.store.figures_for(did)[:2] == stored
    assert len(sw.world.store.figures_for(did)) == 3


def test_same_figures_agrees_with_equality_on_every_field() -> None:
    start = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    version = VersionFigures(version="2", invocations=100, errors=1, p95_ms=80, cache_hits=9, cache_misses=1)
    period = PeriodFigures(start=start, end=start + timedelta(minutes=5), canary=version, stable=version)
    in_paris = period.model_copy(update={"start": start.astimezone(timezone(timedelta(hours=1)))})
    assert same_figures(period, in_paris) and period == in_paris

    def other(value: Any) -> Any:
        if isinstance(value, datetime):
            return value + timedelta(seconds=1)
        return "3" if isinstance(value, str) else (1 if value is None else value + 1)

    for name in VersionFigures.model_fields:
        changed = version.model_copy(update={name: other(getattr(version, name))})
        for side in ("canary", "stable"):
            revised = period.model_copy(update={side: changed})
            assert not same_figures(period, revised) and period != revised, (side, name)
    for name in ("start", "end"):
        revised = period.model_copy(update={name: other(getattr(period, name))})
        assert not same_figures(period, revised) and period != revised, name
    assert set(PeriodFigures.model_fields) == {"start", "end", "canary", "stable"}  # same_figures sees all


def test_a_function_dropped_from_the_policy_is_reported_not_judged() -> None:
    sw, did = soaking()
    sw.sim.run(5)
    sw.world.service.lookup.policy = Policy.model_validate({"defaults": {}, "functions": {ORDERS: {}}})

    [outcome] = sw.sim.minute()

    assert outcome.deployment_id == did and outcome.kind is None
    assert outcome.error is not None and "not listed" in outcome.error
    assert sw.deployment(did).state is State.CANARY


class _FailingNotifier(RecordingNotifier):
    def publish(self, event: AnyEvent) -> MessageRef | None:
        if isinstance(event, SoakReport):
            raise ConnectionError("slack is down")
        return super().publish(event)


def test_a_notifier_failure_never_breaks_the_loop() -> None:
    sw, did = soaking()
    sw.world.announcer.notifier = _FailingNotifier()

    sw.sim.run(60)

    assert sw.deployment(did).state is State.AWAITING_APPROVAL


def test_a_chart_failure_posts_the_report_without_a_chart() -> None:
    def broken(d: Deployment, figures: list[PeriodFigures], thresholds: Thresholds) -> bytes:
        raise RuntimeError("matplotlib exploded")

    sw, _ = soaking()
    sw.runner = sw.sim.runner = soak_runner(sw.world.service, sw.metrics, chart=broken)

    sw.sim.run(15)

    [report] = sw.sim.events(SoakReport)
    assert report.chart_png is None and len(report.figures) == 3


def test_default_chart_uses_bot_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, Thresholds]] = []

    def soak_chart_png(d: Deployment, figures: list[PeriodFigures], *, thresholds: Thresholds) -> bytes:
        calls.append((len(figures), thresholds))
        return b"png"

    charts = types.ModuleType("bot.charts")
    charts.soak_chart_png = soak_chart_png  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot.charts", charts)
    d = core_started()

    assert default_chart(d, [], Thresholds()) == b"png"
    assert calls == [(0, Thresholds())]


def test_default_chart_is_none_while_bot_charts_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bot.charts", None)  # makes the import fail
    assert default_chart(core_started(), [], Thresholds()) is None


# ---------------------------------------------------------------- idempotence and races
def test_tick_twice_at_the_same_now_acts_once() -> None:
    sw, did = soaking(steps=["5%", "25%"], soak="20m")
    sw.sim.run(19)
    sw.sim.minute(tick=False)  # 14:20: the soak of step 1 is over
    now = sw.world.clock.now()

    first = sw.runner.tick(now)
    second = sw.runner.tick(now)

    assert [o.kind for o in first] == [DecisionKind.NEXT_STEP]
    assert [o.kind for o in second] == [DecisionKind.CONTINUE]
    assert audit_actions(sw, did).count("next_step") == 1
    assert len(sw.world.traffic.routing_writes) == 2  # start, one step
    assert sw.runner.report(now) == 0


def test_tick_twice_after_the_soak_asks_for_approval_once() -> None:
    sw, did = soaking()
    sw.sim.run(59)
    sw.sim.minute(tick=False)
    now = sw.world.clock.now()

    sw.runner.tick(now)
    sw.runner.tick(now)
    sw.runner.report(now)

    assert len(sw.sim.events(DecisionNeeded)) == 1
    assert [r.number for r in sw.sim.events(SoakReport)] == [1, 2, 3, 4]
    assert audit_actions(sw, did).count("await_approval") == 1


class _PersonActsDuringFetch(FakeMetrics):
    """A person holds the canary while the metrics round is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.act: Any = None

    def fetch(self, requests: Sequence[WindowRequest]) -> dict[str, list[PeriodFigures]]:
        result = super().fetch(requests)
        if self.act is not None:
            self.act()
            self.act = None
        return result


def test_a_persons_action_during_the_metrics_round_wins() -> None:
    world = make_world()
    metrics = _PersonActsDuringFetch()
    runner = soak_runner(world.service, metrics, chart=lambda *_: None)
    sim = TrafficSim(
        traffic=world.traffic, metrics=metrics, clock=world.clock, runner=runner, notifier=world.notifier
    )
    did = world.start()
    sim.run(59)
    metrics.act = lambda: world.service.hold(FN, None, SRE, reason="checking logs")

    [outcome] = sim.minute()  # 15:00: the soak is over, but the canary is held now

    assert (outcome.kind, outcome.error) == (DecisionKind.CONTINUE, None)

    d = world.service.get(did)
    assert d.state is State.HELD and d.reason == "checking logs"
    assert not [e for e in world.notifier.events if isinstance(e, DecisionNeeded)]


def test_a_held_canary_that_breaches_alerts_once_instead_of_rolling_back() -> None:
    sw, did = soaking()
    sw.sim.run(10)
    sw.world.service.hold(FN, None, SRE, reason="watching")
    sw.sim.behave("2", error_rate=0.03)

    sw.sim.run(20)

    assert sw.deployment(did).state is State.HELD
    alerts = [e for e in sw.sim.events(DecisionNeeded) if e.why == "breach_alert"]
    assert len(alerts) == 1
    assert sw.world.alias() == ("1", {"2": 0.05})


def test_an_unchanged_verdict_is_not_written_again() -> None:
    # Every save bumps the revision that Slack buttons carry: a clean soak must not make them stale.
    sw, did = soaking()
    sw.sim.run(10)
    revision = sw.deployment(did).revision

    sw.sim.run(30)

    assert sw.deployment(did).revision == revision
    assert sw.deployment(did).last_verdict == "✅ all within thresholds"


# ---------------------------------------------------------------- reports across restarts and downtime
def test_a_restarted_runner_does_not_repost_reports() -> None:
    sw, did = soaking()
    sw.sim.run(20)
    sw.sim.runner = soak_runner(sw.world.service, sw.metrics, chart=lambda *_: b"png")  # a new process

    sw.sim.run(40)

    assert [r.number for r in sw.sim.events(SoakReport)] == [1, 2, 3, 4]
    assert sw.deployment(did).state is State.AWAITING_APPROVAL


def test_after_downtime_only_the_latest_due_report_is_posted() -> None:
    sw, did = soaking()
    sw.sim.run(10)
    sw.sim.run(40, tick=False)  # the bot is down from 14:10 to 14:50; traffic goes on

    sw.sim.minute()
    reports = sw.sim.events(SoakReport)
    assert [r.number for r in reports] == [3]
    assert len(reports[0].figures) == 10

    sw.sim.run(9)
    assert [r.number for r in sw.sim.events(SoakReport)] == [3, 4]
    assert sw.deployment(did).state is State.AWAITING_APPROVAL


def test_report_returns_how_many_it_posted() -> None:
    sw, _ = soaking()
    sw.sim.run(14)
    sw.sim.minute(tick=False)
    sw.runner.tick()  # the tick posts the report that fell due
    assert sw.runner.report() == 0

    sw.world.clock.advance(timedelta(minutes=15))
    assert sw.runner.report() == 1
    assert sw.runner.report() == 0


def test_reports_restart_when_a_person_changes_the_weight() -> None:
    sw, _ = soaking()
    sw.sim.run(20)
    sw.world.service.set_weight(FN, None, SRE, weight=0.1)

    sw.sim.run(15)

    reports = sw.sim.events(SoakReport)
    assert [(r.number, r.deployment.weight) for r in reports] == [(1, 0.05), (1, 0.1)]


# ---------------------------------------------------------------- read side
def test_summary_and_latest_verdicts_come_from_the_store_without_aws() -> None:
    sw, did = soaking()
    sw.sim.behave("2", error_rate=0.01)
    sw.sim.run(5)
    calls = sw.metrics.calls
    d = sw.deployment(did)

    figures, verdicts = sw.runner.summary(d)
    latest = sw.runner.latest_verdicts([d])

    assert sw.metrics.calls == calls
    assert len(figures) == 1 and figures[0].canary.invocations == 500
    assert [v.outcome for v in verdicts] == [Outcome.FAIL]
    assert latest == {did: verdicts[-1]}
    assert latest[did].reason == "error rate 1% > 0.1%"


def test_latest_verdicts_skips_deployments_without_a_complete_period() -> None:
    sw, did = soaking()
    sw.sim.run(3)
    assert sw.runner.latest_verdicts([sw.deployment(did)]) == {}


# ---------------------------------------------------------------- when reports are due
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("soak", "every", "elapsed", "due"),
    [
        (HOUR, timedelta(minutes=15), timedelta(minutes=14), None),
        (HOUR, timedelta(minutes=15), timedelta(minutes=15), (1, 4)),
        (HOUR, timedelta(minutes=15), timedelta(minutes=44), (2, 4)),
        (HOUR, timedelta(minutes=15), timedelta(minutes=90), (4, 4)),
        # The last report of a soak that is not a multiple of report_every comes at the soak's end.
        (timedelta(minutes=20), timedelta(minutes=15), timedelta(minutes=19), (1, 2)),
        (timedelta(minutes=20), timedelta(minutes=15), timedelta(minutes=20), (2, 2)),
    ],
)
def test_due_report(
    soak: timedelta, every: timedelta, elapsed: timedelta, due: tuple[int, int] | None
) -> None:
    d = core_started(soak=soak)
    assert d.step_started_at is not None
    assert due_report(d, every, d.step_started_at + elapsed) == due


def test_an_extended_soak_gets_more_reports() -> None:
    d = core_started(soak=HOUR)
    assert d.step_started_at is not None and d.soak_ends_at is not None
    extended = d.model_copy(update={"soak_ends_at": d.soak_ends_at + timedelta(minutes=30)})
    assert due_report(extended, timedelta(minutes=15), d.step_started_at + timedelta(minutes=75)) == (5, 6)


def test_rollback_event_carries_the_soak_figures() -> None:
    sw, _ = soaking()
    sw.sim.behave("2", error_rate=0.05)
    sw.sim.run(10)
    rolled_back = sw.sim.events(TrafficChanged)[-1]
    assert rolled_back.action == "rolled_back"
    assert len(rolled_back.figures) == 2


def test_reports_carry_a_real_png_chart_by_default() -> None:
    sw, _ = soaking()
    sw.sim.runner = soak_runner(sw.world.service, sw.metrics)

    sw.sim.run(15)

    [report] = sw.sim.events(SoakReport)
    assert report.chart_png is not None and report.chart_png.startswith(b"\x89PNG")


# ---------------------------------------------------------------- honest under failures
def test_metrics_failing_on_every_tick_are_told_once_and_the_soak_ends_inconclusive_not_complete() -> None:
    sw, did = soaking(soak="30m")
    sw.metrics.fail_always(AwsFailure("CloudWatch GetMetricData failed: HTTP 500"))

    sw.sim.run(40)

    notes = [e for e in sw.world.notifier.events if isinstance(e, StateNoted) and e.what == "metrics"]
    assert len(notes) == 1 and "HTTP 500" in (notes[0].reason or "")
    d = sw.deployment(did)
    assert d.state is State.HELD  # inconclusive: never promoted, never "soak complete"
    decisions = [e for e in sw.world.notifier.events if isinstance(e, DecisionNeeded)]
    assert [e.why for e in decisions] == ["inconclusive"]
    assert "too little evidence" in decisions[0].reason
    assert sw.world.alias() == ("1", {"2": 0.05})


def test_an_alias_changed_behind_the_bots_back_is_held_within_one_tick_and_told_once() -> None:
    sw, did = soaking()
    sw.sim.run(3)
    sw.world.traffic.force_change(FN, ALIAS, "1", {"2": 0.5})
    writes = len(sw.world.traffic.routing_writes)

    sw.sim.run(1)
    assert sw.deployment(did).state is State.HELD
    sw.sim.run(5)

    drift = [e for e in sw.world.notifier.events if isinstance(e, StateNoted) and e.what == "drift"]
    assert len(drift) == 1 and "50% v2" in (drift[0].reason or "")
    assert len(sw.world.traffic.routing_writes) == writes  # never written over
    assert sw.world.alias() == ("1", {"2": 0.5})
