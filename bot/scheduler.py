"""When the soak loop runs: APScheduler 3 jobs around a SoakRunner (any Ticker).

- "canary-tick" (every `tick_every`): judge and act on every live canary (and follow the promoted versions
  still watched, bot.watch), then re-sync the deadline jobs.
- "canary-reports" (every `report_check_every`, a little after the tick so it sees the figures the tick
  stored): post the soak reports that fell due.
- "canary-reconcile" (every `reconcile_every`, and at once on start-up): drive every open traffic intent
  (bot.reconciler) — a rollback throttled by AWS or left by a crash is finished here.
- "deadline:<deployment id>" (one date job per live canary): a tick at its soak end or approval deadline, so
  the decision does not wait for the next interval tick.

The store is the source of truth and the jobs are derived from it: start-up and every tick re-create the
deadline jobs from the live deployments, so a restart loses nothing. Every job only calls `runner.tick()` or
`runner.report()`, which decide from the stored state and `now`; an early or extra run is harmless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.model import Deployment, State
from bot.ports import Clock
from bot.reconciler import Reconciler
from bot.ticks import TickOutcome

log = logging.getLogger(__name__)

TICK_JOB = "canary-tick"
RECONCILE_JOB = "canary-reconcile"
REPORT_JOB = "canary-reports"
DEADLINE_PREFIX = "deadline:"
# Run the report check this long after each tick, so a report shows the period the tick just fetched.
REPORT_DELAY = timedelta(seconds=20)


def deadline_of(d: Deployment) -> datetime | None:
    """The moment the judge's decision for `d` changes by itself: soak end, or the approval deadline."""
    if d.state is State.CANARY:
        return d.soak_ends_at
    if d.state is State.AWAITING_APPROVAL:
        return d.approval_deadline
    return None  # held: nothing happens until a person resumes it


class Ticker(Protocol):
    """What the scheduler drives: bot.soak.SoakRunner."""

    @property
    def clock(self) -> Clock: ...

    def tick(self, now: datetime | None = None) -> list[TickOutcome]: ...

    def report(self, now: datetime | None = None) -> int: ...

    def live(self) -> list[Deployment]: ...

    def release_leases(self) -> None:
        """Hand this replica's deployments to the others at once (a clean stop)."""
        ...


class SoakScheduler:
    def __init__(
        self,
        runner: Ticker,
        *,
        tick_every: timedelta = timedelta(minutes=1),
        report_check_every: timedelta = timedelta(minutes=1),
        scheduler: BaseScheduler | None = None,
        report_delay: timedelta = REPORT_DELAY,
        reconcile_every: timedelta = timedelta(seconds=5),
        reconciler: Reconciler | None = None,
    ) -> None:
        if tick_every <= timedelta(0) or report_check_every <= timedelta(0):
            raise ValueError("tick_every and report_check_every must be positive")
        self.runner = runner
        self._reconciler = reconciler  # None: no reconcile job (a runner on its own, in tests)
        self.scheduler: Any = scheduler or BackgroundScheduler(timezone=UTC)
        self._tick_every = tick_every
        self._report_every = report_check_every
        self._report_delay = report_delay
        self._reconcile_every = reconcile_every
        self._reconciled_once = False
        self._stopping = threading.Event()
        # Held while a job body runs, so shutdown can wait for it without holding APScheduler's locks.
        self._busy = threading.Lock()

    # ------------------------------------------------------------ life cycle
    def start(self, *, paused: bool = False) -> None:
        """Add the jobs (ticking at once, to catch up after a restart) and start the scheduler."""
        wall_now = datetime.now(UTC)
        self.scheduler.add_job(
            self.run_tick,
            IntervalTrigger(seconds=_seconds(self._tick_every), timezone=UTC),
            id=TICK_JOB,
            name="judge live canaries",
            next_run_time=wall_now,
            **self._interval_defaults(self._tick_every),
        )
        self.scheduler.add_job(
            self.run_reports,
            IntervalTrigger(seconds=_seconds(self._report_every), timezone=UTC),
            id=REPORT_JOB,
            name="post due soak reports",
            next_run_time=wall_now + self._report_delay,
            **self._interval_defaults(self._report_every),
        )
        if self._reconciler is not None:
            self.scheduler.add_job(
                self.run_reconcile,
                IntervalTrigger(seconds=_seconds(self._reconcile_every), timezone=UTC),
                id=RECONCILE_JOB,
                name="drive open traffic intents",
                next_run_time=wall_now,
                **self._interval_defaults(self._reconcile_every),
            )
        self.sync_jobs()
        self.scheduler.start(paused=paused)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop scheduling; with `wait`, return once the job in progress (if any) has finished.

        APScheduler's own shutdown(wait=True) holds its job-store lock while it waits for running jobs, and
        a tick re-syncing its jobs needs that lock: they would wait for each other forever. So the scheduler
        is stopped without waiting, and the wait happens here, on a lock APScheduler never sees.
        """
        self._stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if wait:
            with self._busy:
                pass
            # Nothing of ours runs any more: hand the deployments over to the other replicas at once.
            self.runner.release_leases()

    def is_alive(self) -> bool:
        """Started, not shut down, and APScheduler's thread still running (for /healthz)."""
        if self._stopping.is_set() or not self.scheduler.running:
            return False
        thread = getattr(self.scheduler, "_thread", None)  # BackgroundScheduler's worker thread
        return thread is None or bool(thread.is_alive())

    # ------------------------------------------------------------ jobs
    def run_tick(self) -> None:
        """The interval job (and every deadline job): tick, then re-derive the deadline jobs."""
        self._run("soak tick", self.runner.tick)
        self._run("re-syncing deadline jobs", self.sync_jobs)

    def run_reconcile(self) -> None:
        """Drive the open intents; the first run after start-up drives all of them, whatever their backoff."""
        first = not self._reconciled_once
        self._reconciled_once = True
        reconciler = self._reconciler
        if reconciler is not None:
            self._run("reconciling intents", lambda: reconciler.run_once(all_open=first))

    def run_reports(self) -> None:
        self._run("soak reports", self.runner.report)

    def _run(self, what: str, body: Callable[[], object]) -> None:
        """Run a job body unless shutting down; an exception is logged, never raised into APScheduler."""
        with self._busy:
            if self._stopping.is_set():
                return
            try:
                body()
            except Exception:
                log.exception("%s failed", what)

    def sync_jobs(self) -> dict[str, datetime]:
        """Make the deadline jobs match the store: one per live canary with a deadline still ahead.

        Deadlines already passed need no job: the interval tick decides them. Returns job id -> run time.
        """
        now = self.runner.clock.now()
        wanted = {
            f"{DEADLINE_PREFIX}{d.id}": moment
            for d in self.runner.live()
            if (moment := deadline_of(d)) is not None and moment > now
        }
        scheduled = {job.id: job for job in self.scheduler.get_jobs() if job.id.startswith(DEADLINE_PREFIX)}
        for job_id in scheduled.keys() - wanted.keys():
            self.scheduler.remove_job(job_id)
        for job_id, moment in wanted.items():
            existing = scheduled.get(job_id)
            if existing is not None and getattr(existing.trigger, "run_date", None) == moment:
                continue
            self.scheduler.add_job(
                self.run_tick,
                DateTrigger(run_date=moment, timezone=UTC),
                id=job_id,
                name=f"deadline tick for {job_id.removeprefix(DEADLINE_PREFIX)}",
                replace_existing=True,
                misfire_grace_time=_seconds(self._tick_every),
                coalesce=True,
            )
        return wanted

    def _interval_defaults(self, every: timedelta) -> dict[str, Any]:
        # One run at a time; after a pause (GC, suspended laptop) run once, not once per missed interval.
        return {
            "max_instances": 1,
            "coalesce": True,
            "misfire_grace_time": _seconds(every),
            "replace_existing": True,
        }


def _seconds(delta: timedelta) -> int:
    return max(1, round(delta.total_seconds()))


__all__ = ["DEADLINE_PREFIX", "RECONCILE_JOB", "REPORT_JOB", "TICK_JOB", "SoakScheduler", "deadline_of"]
