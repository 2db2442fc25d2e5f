"""The watch after a promotion: the seed's "Post-Deployment Review", done by the bot, never acting on traffic.

For `watch_after_promote` (24 h by default) after a promotion, every soak tick also asks for the promoted
version's figures, in the SAME metrics round as the live canaries, and judges each complete period against the
same thresholds. Then, in the deployment's thread:

- a breach (`evaluation_periods` failing periods in a row) alerts the approvers once per breach, with how to go
  back; nothing is reverted automatically: the canary is over, and undoing a promotion is a person's call;
- a check-in every 6 h;
- at the end: the alias is read (100% the promoted version, no additional weights = full migration verified)
  and the post-mortem is posted with the real figures of the soak and of the watch.

As in the soak, nothing is remembered between ticks: what is said once is claimed in the store first, and the
end of a watch is an audit record ("watch_ended"), so a restart or a second replica neither repeats nor loses it.
Watch figures are stored beside the soak's: soak periods end at or before the promotion, watch periods start at
the promotion aligned down to the period.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import judge
from bot.actors import BOT
from bot.comms import WATCH_CHECK_IN_EVERY, migration_text
from bot.config import FunctionPolicy
from bot.events import PostMortem, WatchAlert, WatchCheckIn
from bot.judge import DecisionKind, Outcome, PeriodVerdict
from bot.model import AliasState, AuditRecord, Deployment, PeriodFigures, State
from bot.ports import CanaryError, StorePort, WindowRequest
from bot.ticks import TickOutcome, align_down, window_request
from bot.usecases.announcer import Announcer
from bot.usecases.lookup import Lookup
from bot.usecases.queries import Queries

log = logging.getLogger(__name__)

# Each tick reads this much of the recent watch again: CloudWatch may still add datapoints to the latest
# minutes, and a short downtime leaves no gap. The post-mortem reads the whole watch again anyway.
LOOKBACK = timedelta(minutes=30)
# A watch that ended while the bot was down is still closed after a restart, up to this late.
CLOSE_LATE_BY = timedelta(days=7)

WATCH_ENDED = "watch_ended"  # audit action: the post-mortem went out (or was attempted); the watch is over
WATCH_ALERT = "watch_alert"


@dataclass(frozen=True, slots=True)
class WatchTick:
    """One watched deployment in one tick: what to fetch, and whether this tick ends its watch."""

    deployment: Deployment
    policy: FunctionPolicy
    request: WindowRequest | None
    closing: bool


class PromotionWatch:
    """The watch's part of a soak tick. SoakRunner runs it under its lock, inside its single metrics round."""

    def __init__(self, *, store: StorePort, lookup: Lookup, queries: Queries, announcer: Announcer) -> None:
        self._store = store
        self._lookup = lookup
        self._queries = queries
        self._announcer = announcer

    # ------------------------------------------------------------ before the metrics round
    def plan(
        self, now: datetime, *, take: Callable[[str], bool] = lambda _id: True
    ) -> tuple[list[WatchTick], list[TickOutcome]]:
        """The watches to follow now: those running, and those over but not yet closed (claimed here).
        Only those `take(deployment id)` accepts (the replica holds their tick lease, bot.tick_lease)."""
        store = self._store
        ticks: list[WatchTick] = []
        unfollowed: list[TickOutcome] = []
        for d in store.list_watching(now - CLOSE_LATE_BY):
            assert d.watch_until is not None and d.ended_at is not None  # set together by the promotion
            closing = now >= d.watch_until
            if closing and self._closed(d):
                continue
            if not take(d.id):
                continue  # another replica follows this watch
            try:
                policy = self._lookup.policy_for(d.function)
            except CanaryError as exc:
                log.error("cannot watch %s: %s", d.id, exc)
                unfollowed.append(TickOutcome(d.id, None, "no policy to watch against", error=str(exc)))
                continue
            if closing and not store.claim(_end_key(d), now):
                continue  # closed by another replica, or being closed right now
            ticks.append(WatchTick(d, policy, watch_window(d, policy, now, closing=closing), closing))
        return ticks, unfollowed

    def abandon(self, ticks: Sequence[WatchTick]) -> None:
        """The metrics round failed: the watches this tick would have closed are closed by a later one."""
        for tick in ticks:
            if tick.closing:
                self._store.release(_end_key(tick.deployment))

    # ------------------------------------------------------------ after it
    def follow(self, tick: WatchTick, fetched: list[PeriodFigures], now: datetime) -> TickOutcome:
        """Store the figures, alert on a breach, post the check-in that fell due or, at the end, the post-mortem.
        Never raises: one watch's trouble never stops the loop."""
        d = tick.deployment
        try:
            if fetched:
                self._store.save_figures(d.id, fetched)
            outcome = self._judge(tick, fetched, now)
            if tick.closing:
                return self._close(tick, now, outcome)
            self._check_in(d, tick.policy, now)
            return outcome
        except Exception as exc:
            if tick.closing:
                self._store.release(_end_key(d))
            log.exception("watching %s failed", d.id)
            return TickOutcome(d.id, None, "watch not followed this tick", error=str(exc))

    def post_check_ins(self, now: datetime, *, take: Callable[[str], bool] = lambda _id: True) -> int:
        """The check-ins that fell due (ticks post them too; each goes out once), of the watches `take`
        accepts. Returns how many."""
        posted = 0
        for d in self._store.list_watching(now):
            if due_check_in(d, now) is None or not take(d.id):
                continue
            try:
                policy = self._lookup.policy_for(d.function)
            except CanaryError as exc:
                log.warning("no watch check-in for %s: %s", d.id, exc)
                continue
            try:
                posted += self._check_in(d, policy, now)
            except Exception:
                log.exception("watch check-in for %s failed", d.id)
        return posted

    # ------------------------------------------------------------ steps
    def _judge(self, tick: WatchTick, fetched: list[PeriodFigures], now: datetime) -> TickOutcome:
        """Alert once per breach: the run of failing periods is named by its first period."""
        d, policy = tick.deployment, tick.policy
        if not fetched:
            return TickOutcome(d.id, DecisionKind.CONTINUE, "watching: no new complete period")
        run = failing_tail(fetched, policy)
        if run and len(run) == len(fetched):
            # The run may reach back beyond this round's window: judge it over everything stored.
            run = failing_tail(watch_figures(d, policy, self._store.figures_for(d.id)), policy)
        if len(run) < policy.evaluation_periods:
            latest = max(fetched, key=lambda f: f.start)
            verdict = judge.judge_period(latest, policy.thresholds, min_invocations=policy.min_invocations)
            return TickOutcome(d.id, DecisionKind.CONTINUE, f"watching v{d.canary_version}: {verdict.reason}")
        reason = f"{run[-1].reason} for {len(run)} periods"
        if self._store.claim(f"watch-alert:{d.id}:{run[0].start.isoformat()}", now):
            alias, _ = self._read_alias(d)
            self._audit(d, now, WATCH_ALERT, reason, alias)
            self._publish(
                WatchAlert(
                    deployment=d,
                    at=now,
                    actor=BOT.label,
                    reason=reason,
                    approvers=policy.approvers,
                    alias=alias,
                )
            )
        return TickOutcome(d.id, DecisionKind.ALERT, f"watch breach: {reason}")

    def _check_in(self, d: Deployment, policy: FunctionPolicy, now: datetime) -> int:
        due = due_check_in(d, now)
        if due is None:
            return 0
        number, total = due
        store = self._store
        if not store.claim(_check_in_key(d, number), now):
            return 0
        for skipped in range(1, number):  # missed while down: only the latest is posted
            store.claim(_check_in_key(d, skipped), now)
        figures = watch_figures(d, policy, store.figures_for(d.id))
        self._publish(
            WatchCheckIn(deployment=d, at=now, actor=BOT.label, number=number, total=total, figures=figures)
        )
        return 1

    def _close(self, tick: WatchTick, now: datetime, judged: TickOutcome) -> TickOutcome:
        """Verify the alias, post the post-mortem, and record the watch's end in the audit log."""
        d, policy = tick.deployment, tick.policy
        stored = self._store.figures_for(d.id)
        alias, error = self._read_alias(d)
        verdict = migration_text(d, alias, error)
        self._publish(
            PostMortem(
                deployment=d,
                at=now,
                actor=BOT.label,
                alias=alias,
                alias_error=error,
                soak_figures=self._queries.soak_evidence(d),
                watch_figures=watch_figures(d, policy, stored),
            )
        )
        self._audit(d, now, WATCH_ENDED, verdict, alias)
        return TickOutcome(d.id, judged.kind, f"watch complete: {verdict}")

    # ------------------------------------------------------------ plumbing
    def _closed(self, d: Deployment) -> bool:
        return any(record.action == WATCH_ENDED for record in self._store.audit_for(d.id))

    def _read_alias(self, d: Deployment) -> tuple[AliasState | None, str | None]:
        try:
            return self._queries.read_alias(d.function, d.alias), None
        except CanaryError as exc:
            log.warning("could not read %s for the watch: %s", d.key, exc)
            return None, str(exc)

    def _audit(
        self, d: Deployment, now: datetime, action: str, reason: str, alias: AliasState | None
    ) -> None:
        self._store.append_audit(
            AuditRecord(
                deployment_id=d.id,
                at=now,
                actor=BOT.label,
                action=action,
                from_state=State.PROMOTED,
                to_state=State.PROMOTED,
                reason=reason,
                alias_after=alias.routing() if alias is not None else None,
            )
        )

    def _publish(self, event: WatchCheckIn | WatchAlert | PostMortem) -> None:
        """A message that cannot be posted is logged; the watch goes on (and is not repeated)."""
        try:
            self._announcer.announce(event)
        except Exception:
            log.exception("posting %s about %s failed", event.kind, event.deployment.id)


# ---------------------------------------------------------------- pure helpers
def watch_window(
    d: Deployment, policy: FunctionPolicy, now: datetime, *, closing: bool
) -> WindowRequest | None:
    """The periods to fetch: the recent ones while watching; the whole watch when closing it (settled figures
    for the post-mortem, and nothing missing after a downtime). None when no period is complete yet."""
    assert d.ended_at is not None and d.watch_until is not None
    first, last = _watch_bounds(d, policy)
    if closing:
        start, end = first, last
    else:
        end = min(align_down(now, policy.period), last)
        start = max(first, align_down(end - LOOKBACK, policy.period))
    if start >= end:
        return None
    # The canary is the promoted version; the previous stable should get no traffic now.
    return window_request(d, policy, start, end)


def watch_figures(
    d: Deployment, policy: FunctionPolicy, stored: Sequence[PeriodFigures]
) -> list[PeriodFigures]:
    """The watch's periods among a deployment's stored figures, oldest first."""
    first, last = _watch_bounds(d, policy)
    return sorted((f for f in stored if f.start >= first and f.end <= last), key=lambda f: f.start)


def soak_figures(
    d: Deployment, policy: FunctionPolicy, stored: Sequence[PeriodFigures]
) -> list[PeriodFigures]:
    """The soak's periods (every step) among a deployment's stored figures, oldest first."""
    first, _ = _watch_bounds(d, policy)
    return sorted((f for f in stored if f.end <= first), key=lambda f: f.start)


def due_check_in(d: Deployment, now: datetime) -> tuple[int, int] | None:
    """(number, total) of the latest check-in due by `now`, or None. Check-in n is due n × 6 h after the
    promotion; the last 6 h slot belongs to the post-mortem, so a 24 h watch has 3 check-ins."""
    if d.watch_until is None or d.ended_at is None or now >= d.watch_until:
        return None
    total = math.ceil((d.watch_until - d.ended_at) / WATCH_CHECK_IN_EVERY) - 1
    number = min(total, (now - d.ended_at) // WATCH_CHECK_IN_EVERY)
    return (number, total) if number >= 1 else None


def failing_tail(figures: Sequence[PeriodFigures], policy: FunctionPolicy) -> list[PeriodVerdict]:
    """The trailing run of failing periods, oldest first; judged from the newest back, so a tick judges
    only as many periods as the run is long (plus one)."""
    run: list[PeriodVerdict] = []
    for period in sorted(figures, key=lambda f: f.start, reverse=True):
        verdict = judge.judge_period(period, policy.thresholds, min_invocations=policy.min_invocations)
        if verdict.outcome is not Outcome.FAIL:
            break
        run.append(verdict)
    return run[::-1]


def _watch_bounds(d: Deployment, policy: FunctionPolicy) -> tuple[datetime, datetime]:
    """[first, last): from the period holding the promotion to the last whole period before the watch ends."""
    assert d.ended_at is not None and d.watch_until is not None
    return align_down(d.ended_at, policy.period), align_down(d.watch_until, policy.period)


def _end_key(d: Deployment) -> str:
    return f"watch-end:{d.id}"


def _check_in_key(d: Deployment, number: int) -> str:
    return f"watch-check-in:{d.id}:{number}"


__all__ = [
    "CLOSE_LATE_BY",
    "LOOKBACK",
    "PromotionWatch",
    "WatchTick",
    "due_check_in",
    "failing_tail",
    "soak_figures",
    "watch_figures",
    "watch_window",
]
