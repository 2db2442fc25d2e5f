"""The soak loop: fetch every live canary's figures, judge them, report in its thread, act (bot.usecases.automatic).

`SoakRunner.tick(now)` is the whole automatic side of canary-bot (with bot.watch, which follows promoted
versions for `watch_after_promote` in the same metrics round). Each tick:

1. reads the live canaries (CANARY, AWAITING_APPROVAL, HELD) from the store,
2. asks the metrics port for all of them in ONE round (complete, clock-aligned periods of the current step),
3. stores the figures, judges every complete period of the step (and, if the policy says so, the step's
   canary series against stable's with Mann-Whitney U),
4. posts the soak report that fell due, so the thread reads "report 4/4" before "approval wanted",
5. records the verdict and acts on `judge.decide` through bot.usecases.automatic (traffic only through the AliasWriter).

Nothing is remembered between ticks: decisions are derived from the stored deployment, the figures and
`now`, and everything said once (reports, breach alerts) is claimed in the store first. Running tick twice at
the same `now`, on a restarted process or on a second replica, does not act or post twice.

Replicas share the work (bot.tick_lease): a tick takes each deployment's tick lease first and skips those
another replica holds, and every decision it records is fenced by that lease.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bot import canary, judge
from bot.actors import BOT
from bot.config import FunctionPolicy
from bot.events import SoakReport, StateNoted
from bot.intents import Routing
from bot.judge import Decision, DecisionKind, Outcome, PeriodVerdict
from bot.judge_cache import StepJudgeCache
from bot.model import AliasState, Deployment, PeriodFigures, State, Thresholds
from bot.ports import CanaryError, Clock, MetricsPort, StorePort, TrafficPort, WindowRequest
from bot.reconciler import Reconciler
from bot.tick_lease import TickLeases
from bot.ticks import TickOutcome, align_down, window_request
from bot.usecases.announcer import Announcer
from bot.usecases.automatic import Automatic
from bot.usecases.lookup import Lookup
from bot.watch import PromotionWatch

log = logging.getLogger(__name__)

# A step's figures (oldest first) and their verdicts.
Judged = tuple[list[PeriodFigures], list[PeriodVerdict]]
ChartRenderer = Callable[[Deployment, list[PeriodFigures], Thresholds], bytes | None]

# States whose alias carries canary traffic that the bot still judges.
SOAKING_STATES = frozenset({State.CANARY, State.AWAITING_APPROVAL, State.HELD})


# After this many failed metric fetches in a row, the thread is told the metrics are failing.
METRICS_FAILING_AFTER = 3


def default_chart(d: Deployment, figures: list[PeriodFigures], thresholds: Thresholds) -> bytes | None:
    """bot.charts.soak_chart_png, imported on first use (matplotlib is heavy); None when unavailable."""
    try:
        from bot.charts import soak_chart_png
    except ImportError:
        log.warning("bot.charts is not available: soak reports go out without a chart")
        return None
    return soak_chart_png(d, figures, thresholds=thresholds)


class SoakRunner:
    def __init__(
        self,
        *,
        automatic: Automatic,
        lookup: Lookup,
        announcer: Announcer,
        reconciler: Reconciler,
        store: StorePort,
        traffic: TrafficPort,
        clock: Clock,
        metrics: MetricsPort,
        watch: PromotionWatch,
        chart: ChartRenderer | None = None,
        leases: TickLeases | None = None,
    ) -> None:
        self._automatic = automatic
        self._lookup = lookup
        self._announcer = announcer
        self._reconciler = reconciler
        self._store = store
        self._traffic = traffic
        self.clock = clock
        self.metrics = metrics
        self._chart = chart or default_chart
        self._watch = watch
        # Verdicts of periods already judged, reused while their figures stay the same (a pure cache).
        self._judge_cache = StepJudgeCache()
        # Which deployments this replica ticks: those whose tick lease it holds (bot.tick_lease).
        self.leases = leases or TickLeases(store, clock)
        # Per deployment: when the current run of failed metric fetches began, and its length (this process).
        self._metric_failures: dict[str, tuple[datetime, int]] = {}
        # The scheduler's jobs (interval tick, reports, deadlines) may overlap: one at a time per process.
        # Across processes the store's claims and revisions keep actions single.
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the loop
    def tick(self, now: datetime | None = None) -> list[TickOutcome]:
        """Judge every live canary once and act on what the judge decides, and follow every promoted version
        still watched (bot.watch: judged, never acted on). Never raises for one deployment."""
        now = now or self.clock.now()
        with self._lock:
            live = self._leased(self._soaking())
            self._judge_cache.retain(d.id for d in live)
            watches, outcomes = self._watch.plan(now, take=self.leases.take)
            self.leases.keep_only({d.id for d in live} | {w.deployment.id for w in watches})
            if not live and not watches:
                return outcomes
            policies, unjudged = self._policies(live)
            outcomes += unjudged
            requests = [
                request
                for d in live
                if d.id in policies and (request := self._window(d, policies[d.id], now)) is not None
            ]
            requests += [w.request for w in watches if w.request is not None]
            live = self._without_drift(live, now)
            figures: dict[str, list[PeriodFigures]] = {}
            fetch_error: str | None = None
            if requests:
                try:
                    figures = self.metrics.fetch(requests)
                    self._metric_failures.clear()
                except Exception as exc:
                    # Metrics down: no new figures, so the periods they would have filled stay "no data" and
                    # can never pass; the soak is still decided on what is stored (its end is inconclusive,
                    # never "complete"), and people are told once the failures go on.
                    log.warning("metrics fetch failed: %s", exc, exc_info=True)
                    fetch_error = str(exc)
                    self._watch.abandon(watches)
                    outcomes += [
                        TickOutcome(
                            w.deployment.id, None, "metrics unavailable; watch not judged", error=fetch_error
                        )
                        for w in watches
                    ]
                    watches = []
                    self._metrics_failing([d for d in live if d.id in policies], fetch_error, now)
            for d in live:
                if d.id in policies:
                    outcome = self._judge_and_act(d, policies[d.id], figures.get(d.id, []), now)
                    if fetch_error is not None and outcome.error is None:
                        outcome = TickOutcome(
                            outcome.deployment_id, outcome.kind, outcome.reason, fetch_error
                        )
                    outcomes.append(outcome)
            for w in watches:
                outcomes.append(self._watch.follow(w, figures.get(w.deployment.id, []), now))
            return outcomes

    # ------------------------------------------------------------ the world as it is
    def _without_drift(self, live: list[Deployment], now: datetime) -> list[Deployment]:
        """Read the alias of every live canary; one changed behind the bot's back is held (and people told)
        within this tick, and nothing is ever written over it. Those with a change in flight are skipped:
        the reconciler owns them."""
        kept: list[Deployment] = []
        # One read of the open intents for the whole tick, not one per canary.
        in_flight = {intent.deployment_id for intent in self._store.open_intents()} if live else set()
        for d in live:
            if d.id in in_flight:
                kept.append(d)
                continue
            try:
                alias = self._traffic.get_alias(d.function, d.alias)
            except CanaryError as exc:
                log.warning("could not read the alias of %s: %s", d.id, exc)
                kept.append(d)
                continue
            version, weights = canary.expected_routing(d)
            if Routing(version=version, weights=weights).matches(alias):
                kept.append(d)
                continue
            reason = (
                f"{d.key} was changed outside canary-bot: it routes {alias.describe()}, expected "
                f"{_describe_routing(d, version, weights)}. Nothing was changed; the canary is held until "
                "someone resolves it."
            )
            held = self._reconciler.hold_for_drift(d, reason, alias=alias)
            kept.append(held or d)
        return kept

    def _metrics_failing(self, live: Sequence[Deployment], error: str, now: datetime) -> None:
        for d in live:
            first, count = self._metric_failures.get(d.id, (now, 0))
            self._metric_failures[d.id] = (first, count + 1)
            if count + 1 == METRICS_FAILING_AFTER:
                self._announcer.announce(
                    StateNoted(
                        deployment=d,
                        at=now,
                        actor=BOT.label,
                        what="metrics",
                        reason=f"{count + 1} metric fetches in a row failed since {first:%H:%M} UTC: {error}",
                        key=f"metrics-failing:{d.id}:{first.isoformat()}",
                    )
                )

    def report(self, now: datetime | None = None) -> int:
        """Post the soak reports and watch check-ins that are due (ticks post them too; each goes out once).
        Returns how many."""
        now = now or self.clock.now()
        posted = 0
        with self._lock:
            for d in self._leased(self._soaking()):
                try:
                    policy = self._lookup.policy_for(d.function)
                except CanaryError as exc:
                    log.warning("no soak report for %s: %s", d.id, exc)
                    continue
                posted += self._report_safely(d, policy, now)
            posted += self._watch.post_check_ins(now, take=self.leases.take)
        return posted

    def release_leases(self) -> None:
        """Let go of every tick lease this replica holds (a clean stop): the others take over at once."""
        self.leases.release_all()

    def _leased(self, deployments: list[Deployment]) -> list[Deployment]:
        """Those whose tick lease this replica holds (taken or renewed now); another replica ticks the rest."""
        return [d for d in deployments if self.leases.take(d.id)]

    # ------------------------------------------------------------ read side (no AWS call)
    def live(self) -> list[Deployment]:
        """Every live deployment (for the scheduler's deadline jobs)."""
        return self._store.list_live()

    def summary(self, d: Deployment) -> tuple[list[PeriodFigures], list[PeriodVerdict]]:
        """The current step's stored figures and their verdicts, judged exactly as the tick judges them."""
        policy = self._lookup.policy_for(d.function)
        figures = _step_figures(d, self._store.figures_for(d.id))
        return figures, self._judge(d, figures, policy)

    def latest_verdicts(self, deployments: Sequence[Deployment]) -> dict[str, PeriodVerdict]:
        """Deployment id -> its latest judged period, for those that have one."""
        latest: dict[str, PeriodVerdict] = {}
        for d in deployments:
            try:
                _, verdicts = self.summary(d)
            except CanaryError as exc:
                log.warning("no verdicts for %s: %s", d.id, exc)
                continue
            if verdicts:
                latest[d.id] = verdicts[-1]
        return latest

    # ------------------------------------------------------------ one tick, step by step
    def _soaking(self) -> list[Deployment]:
        return [d for d in self._store.list_live() if d.state in SOAKING_STATES]

    def _policies(self, live: Sequence[Deployment]) -> tuple[dict[str, FunctionPolicy], list[TickOutcome]]:
        policies: dict[str, FunctionPolicy] = {}
        unjudged: list[TickOutcome] = []
        for d in live:
            try:
                policies[d.id] = self._lookup.policy_for(d.function)
            except CanaryError as exc:
                # Taken out of the policy file mid-canary: nothing to judge against; people must decide.
                log.error("cannot judge %s: %s", d.id, exc)
                unjudged.append(TickOutcome(d.id, None, "no policy to judge against", error=str(exc)))
        return policies, unjudged

    def _window(self, d: Deployment, policy: FunctionPolicy, now: datetime) -> WindowRequest | None:
        """The step's complete, clock-aligned periods; None until one that began inside the step is over."""
        if d.step_started_at is None:
            return None
        start = align_down(d.step_started_at, policy.period)
        end = align_down(now, policy.period)
        first_judged = start if start == d.step_started_at else start + policy.period
        if first_judged + policy.period > end:
            return None
        return window_request(d, policy, start, end)

    def _judge_and_act(
        self, listed: Deployment, policy: FunctionPolicy, figures: list[PeriodFigures], now: datetime
    ) -> TickOutcome:
        decision: Decision | None = None
        try:
            store = self._store
            stored = store.figures_for(listed.id)
            if figures and (changed := _changed_figures(stored, figures)):
                # Only periods whose figures differ from the stored ones are written (a tick re-fetches the
                # whole step; most periods have not changed since the last tick), and read back.
                store.save_figures(listed.id, changed)
                stored = store.figures_for(listed.id)
            # Re-read: a person may have acted while the metrics were in flight; their action wins.
            d = store.get(listed.id)
            if d is None or d.state not in SOAKING_STATES:
                state = d.state.value if d is not None else "gone"
                return TickOutcome(listed.id, DecisionKind.CONTINUE, f"ended meanwhile ({state})")
            # Judged once a tick: the report that fell due shows the verdicts the decision is made on.
            step = _step_figures(d, stored)
            verdicts = self._judge(d, step, policy)
            self._report_safely(d, policy, now, judged=(step, verdicts))
            decision = judge.decide(d, verdicts, policy, now=now)
            noted = self._note(d, decision, verdicts)
            if noted is None:
                return TickOutcome(d.id, None, "changed while judging; judged again next tick")
            self._act(noted, decision, verdicts, now)
            return TickOutcome(d.id, decision.kind, decision.reason)
        except Exception as exc:
            # AliasDrift, AlreadyActed, AwsFailure...: this canary waits for the next tick or a person;
            # the others go on.
            if isinstance(exc, CanaryError):
                log.warning("acting on %s failed: %s", listed.id, exc)
            else:
                log.exception("acting on %s failed", listed.id)
            kind = decision.kind if decision is not None else None
            reason = decision.reason if decision is not None else "not judged"
            return TickOutcome(listed.id, kind, reason, error=str(exc))

    def _judge(
        self, d: Deployment, figures: list[PeriodFigures], policy: FunctionPolicy
    ) -> list[PeriodVerdict]:
        # The sequential judge calibrates for the looks the step's soak holds (more when it was extended).
        verdicts = self._judge_cache.judge_step(
            d.id, figures, policy, looks=judge.soak_periods(d, policy.period)
        )
        if policy.statistical.enabled:
            verdicts = judge.with_series_checks(figures, verdicts, policy)
        return verdicts

    def _note(
        self, d: Deployment, decision: Decision, verdicts: Sequence[PeriodVerdict]
    ) -> Deployment | None:
        """Record the verdict; None when someone changed the deployment first (decide again next tick).

        An unchanged verdict is not written again: every save bumps the revision, and Slack buttons carry
        the revision they were drawn for, so a save per minute would make every button stale.
        """
        if not verdicts:
            return d  # nothing judged in this step yet: nothing new to remember
        text = verdict_text(verdicts[-1])
        if d.last_verdict == text and d.breach_streak == decision.breach_streak:
            return d
        self.leases.fence(d.id)  # raises LeaseLost when another replica took this deployment meanwhile
        noted = self._automatic.note_verdict(d, verdict=text, breach_streak=decision.breach_streak)
        if noted.last_verdict != text or _moved_on(d, noted):
            return None
        return noted

    def _act(
        self, d: Deployment, decision: Decision, verdicts: Sequence[PeriodVerdict], now: datetime
    ) -> None:
        automatic, reason = self._automatic, decision.reason
        if decision.kind is not DecisionKind.CONTINUE:
            self.leases.fence(d.id)  # a stalled replica whose lease ran out records nothing
        match decision.kind:
            case DecisionKind.CONTINUE:
                return
            case DecisionKind.ROLLBACK:
                automatic.roll_back(d, reason=reason, detected_at=now, cause=decision.cause)
            case DecisionKind.ALERT:
                # Once per breach streak: the streak is named by the start of its first failing period.
                first_failing = _judged(d, verdicts, now)[-decision.breach_streak]
                key = f"alert:{d.id}:{d.step_index}:{first_failing.start.isoformat()}"
                if self._store.claim(key, now):
                    automatic.breach_alert(d, reason=reason)
            case DecisionKind.NEXT_STEP:
                automatic.next_step(d, reason=reason)
            case DecisionKind.AWAIT_APPROVAL:
                automatic.await_approval(d, reason=reason)
            case DecisionKind.PROMOTE:
                automatic.auto_promote(d, reason=reason)
            case DecisionKind.INCONCLUSIVE:
                automatic.inconclusive(d, reason=reason)
            case DecisionKind.APPROVAL_TIMEOUT:
                action = decision.action or self._lookup.policy_for(d.function).on_approval_timeout
                automatic.approval_timed_out(d, action=action, reason=reason)

    # ------------------------------------------------------------ reports
    def _report_safely(
        self, d: Deployment, policy: FunctionPolicy, now: datetime, *, judged: Judged | None = None
    ) -> int:
        """A report that cannot be posted never holds up a decision (least of all a rollback).
        `judged`: the step's figures and verdicts when the tick has them already."""
        try:
            return self._post_due_report(d, policy, now, judged)
        except Exception:
            log.exception("soak report for %s failed", d.id)
            return 0

    def _post_due_report(
        self, d: Deployment, policy: FunctionPolicy, now: datetime, judged: Judged | None
    ) -> int:
        """Post the latest due report of the current step, once. Reports skipped by downtime are dropped."""
        due = due_report(d, policy.report_every, now)
        if due is None:
            return 0
        number, total = due
        store = self._store
        if store.is_claimed(_report_key(d, number)) or not self.leases.holds(d.id):
            return 0
        if not store.claim(_report_key(d, number), now):
            return 0
        for skipped in range(1, number):
            store.claim(_report_key(d, skipped), now)
        figures, verdicts = judged or self.summary(d)
        event = SoakReport(
            deployment=d,
            at=now,
            actor=BOT.label,
            number=number,
            total=total,
            figures=figures,
            verdicts=list(verdicts),
            chart_png=self._render_chart(d, figures, policy.thresholds),
            key=_report_key(d, number),  # the outbox keeps one message per report, whoever posts it
        )
        try:
            self._announcer.announce(event)
        except Exception:
            log.exception("posting soak report %d/%d of %s failed", number, total, d.id)
        return 1

    def _render_chart(
        self, d: Deployment, figures: list[PeriodFigures], thresholds: Thresholds
    ) -> bytes | None:
        if not figures:
            return None
        try:
            return self._chart(d, figures, thresholds)
        except Exception:
            log.exception("chart for %s failed; the report goes out without it", d.id)
            return None


# ---------------------------------------------------------------- pure helpers
def due_report(d: Deployment, every: timedelta, now: datetime) -> tuple[int, int] | None:
    """(number, total) of the latest soak report due by `now` in the current step, or None.

    Report n is due at step start + n × every, and the last one at the end of the soak (so a 20 min soak
    reported every 15 min gets 2 reports, the second at 20 min). The total counts over the step's soak
    window as it stands, so an extended soak gets more reports.
    """
    start = d.step_started_at
    if start is None or every <= timedelta(0):
        return None
    window = d.soak_ends_at - start if d.soak_ends_at is not None else d.soak
    total = max(1, math.ceil(window / every))
    soak_over = d.soak_ends_at is not None and now >= d.soak_ends_at
    number = total if soak_over else min(total, (now - start) // every)
    return (number, total) if number >= 1 else None


def verdict_text(latest: PeriodVerdict) -> str:
    """The line remembered on the deployment: '✅ all within thresholds', '🔴 error rate 2.5% > 0.1%'."""
    mark = {Outcome.PASS: "✅", Outcome.FAIL: "🔴", Outcome.NO_DATA: "⚠️"}[latest.outcome]
    return f"{mark} {latest.reason}"


def _report_key(d: Deployment, number: int) -> str:
    # The step's start is part of the key: a manual weight change restarts the soak (and its reports)
    # without changing the step index.
    started = d.step_started_at.isoformat() if d.step_started_at else "-"
    return f"report:{d.id}:{d.step_index}:{started}:{number}"


def _step_figures(d: Deployment, figures: Sequence[PeriodFigures]) -> list[PeriodFigures]:
    """Periods that began inside the current step, oldest first (the one straddling its start is not
    evidence about this step's weight)."""
    return sorted(
        (f for f in figures if d.step_started_at is None or f.start >= d.step_started_at),
        key=lambda f: f.start,
    )


def _changed_figures(
    stored: Sequence[PeriodFigures], fetched: Sequence[PeriodFigures]
) -> list[PeriodFigures]:
    """The fetched periods that are new or differ from the stored ones. Compared as values (frozen models:
    equal fields, equal instants whatever the time zone), without serialising either side."""
    by_start = {f.start: f for f in stored}
    return [f for f in fetched if (known := by_start.get(f.start)) is None or not same_figures(known, f)]


def same_figures(a: PeriodFigures, b: PeriodFigures) -> bool:
    """`a == b`, faster: the versions' fields are plain values, so their field dicts are compared directly
    rather than through pydantic's __eq__ three times a period (this runs for every period of every live
    canary, every tick). tests/test_soak_runner.py checks it agrees with == field by field."""
    return (
        a.start == b.start
        and a.end == b.end
        and a.canary.__dict__ == b.canary.__dict__
        and a.stable.__dict__ == b.stable.__dict__
    )


def _judged(d: Deployment, verdicts: Sequence[PeriodVerdict], now: datetime) -> list[PeriodVerdict]:
    """The verdicts `judge.decide` looks at, in its order."""
    return sorted(
        (v for v in verdicts if (d.step_started_at is None or v.start >= d.step_started_at) and v.end <= now),
        key=lambda v: v.start,
    )


def _describe_routing(d: Deployment, version: str, weights: dict[str, float]) -> str:
    return AliasState(
        function=d.function, alias=d.alias, version=version, weights=weights, revision_id=""
    ).describe()


def _moved_on(before: Deployment, after: Deployment) -> bool:
    """Did someone else change the deployment's course between our read and our note?"""
    fields = ("state", "step_index", "weight", "step_started_at", "soak_ends_at", "approval_deadline")
    return any(getattr(before, name) != getattr(after, name) for name in fields)


__all__ = [
    "SOAKING_STATES",
    "ChartRenderer",
    "SoakRunner",
    "TickOutcome",
    "align_down",
    "default_chart",
    "due_report",
    "verdict_text",
]
