"""SoakScheduler: the APScheduler jobs around the soak runner, derived from the store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from bot.actors import cli_actor
from bot.composition import soak_runner
from bot.model import Deployment, State
from bot.scheduler import DEADLINE_PREFIX, REPORT_JOB, TICK_JOB, SoakScheduler, deadline_of
from bot.soak import TickOutcome
from bot.tick_lease import TickLeases
from tests.support.canary_core import in_state
from tests.support.traffic_sim import SoakWorld, soak_world
from tests.support.world import FN

SRE = cli_actor("sre")


@pytest.fixture
def scheduler() -> Iterator[BackgroundScheduler]:
    background = BackgroundScheduler(timezone=UTC)
    yield background
    if background.running:
        background.shutdown(wait=False)


def deadline_jobs(background: BackgroundScheduler) -> dict[str, datetime]:
    return {
        job.id: job.trigger.run_date for job in background.get_jobs() if job.id.startswith(DEADLINE_PREFIX)
    }


def test_start_adds_the_tick_and_report_jobs(scheduler: BackgroundScheduler) -> None:
    sw = soak_world()
    soak = SoakScheduler(
        sw.runner,
        tick_every=timedelta(seconds=30),
        report_check_every=timedelta(minutes=2),
        scheduler=scheduler,
    )

    soak.start(paused=True)

    tick, reports = scheduler.get_job(TICK_JOB), scheduler.get_job(REPORT_JOB)
    assert tick.trigger.interval == timedelta(seconds=30)
    assert reports.trigger.interval == timedelta(minutes=2)
    assert (tick.max_instances, tick.coalesce, tick.misfire_grace_time) == (1, True, 30)
    assert (reports.max_instances, reports.coalesce) == (1, True)
    # Reports run after the tick, so they show the figures it stored.
    assert reports.next_run_time > tick.next_run_time
    soak.shutdown(wait=False)
    assert not scheduler.running


def test_start_creates_deadline_jobs_for_live_canaries_from_the_store(scheduler: BackgroundScheduler) -> None:
    sw = soak_world()
    canary = sw.deployment(sw.world.start())

    SoakScheduler(sw.runner, scheduler=scheduler).start(paused=True)

    assert deadline_jobs(scheduler) == {f"{DEADLINE_PREFIX}{canary.id}": canary.soak_ends_at}


def test_a_restart_recreates_the_deadline_jobs(scheduler: BackgroundScheduler) -> None:
    sw = soak_world()
    did = sw.world.start()
    sw.sim.run(60)  # now awaiting approval
    d = sw.deployment(did)
    assert d.state is State.AWAITING_APPROVAL

    # A new process: a fresh runner and scheduler on the same store.
    fresh = SoakScheduler(soak_runner(sw.world.service, sw.metrics), scheduler=scheduler)
    fresh.start(paused=True)

    assert deadline_jobs(scheduler) == {f"{DEADLINE_PREFIX}{did}": d.approval_deadline}


def test_sync_jobs_follows_the_store(scheduler: BackgroundScheduler) -> None:
    sw = soak_world()
    soak = SoakScheduler(sw.runner, scheduler=scheduler)
    soak.start(paused=True)
    assert deadline_jobs(scheduler) == {}

    did = sw.world.start()
    soak.sync_jobs()
    assert list(deadline_jobs(scheduler)) == [f"{DEADLINE_PREFIX}{did}"]

    sw.world.service.extend(FN, None, SRE, by=timedelta(minutes=30))
    soak.sync_jobs()
    assert deadline_jobs(scheduler) == {f"{DEADLINE_PREFIX}{did}": sw.deployment(did).soak_ends_at}

    sw.world.service.hold(FN, None, SRE, reason="looking")  # held: no clock runs
    soak.sync_jobs()
    assert deadline_jobs(scheduler) == {}

    sw.world.service.resume(FN, None, SRE)
    sw.world.service.rollback(FN, None, SRE, reason="done here")
    assert soak.sync_jobs() == {}
    assert deadline_jobs(scheduler) == {}


def test_deadlines_already_passed_get_no_job(scheduler: BackgroundScheduler) -> None:
    sw = soak_world()
    sw.world.start()
    sw.world.clock.advance(timedelta(hours=2))  # the interval tick will decide it

    assert SoakScheduler(sw.runner, scheduler=scheduler).sync_jobs() == {}


def test_the_tick_job_ticks_and_resyncs(scheduler: BackgroundScheduler) -> None:
    sw = soak_world()
    did = sw.world.start()
    sw.sim.run(59, tick=False)
    soak = SoakScheduler(sw.runner, scheduler=scheduler)
    soak.start(paused=True)
    job = scheduler.get_job(f"{DEADLINE_PREFIX}{did}")
    sw.sim.minute(tick=False)  # the soak's last minute

    job.func()  # what APScheduler runs at the soak's end

    d = sw.deployment(did)
    assert d.state is State.AWAITING_APPROVAL
    assert deadline_jobs(scheduler) == {f"{DEADLINE_PREFIX}{did}": d.approval_deadline}


class _RunnerStub:
    """What the scheduler drives (bot.scheduler.Ticker), delegating to the world's soak runner."""

    def __init__(self, sw: SoakWorld) -> None:
        self.clock = sw.world.clock
        self._runner = sw.runner

    def tick(self, now: datetime | None = None) -> list[TickOutcome]:
        return self._runner.tick(now)

    def report(self, now: datetime | None = None) -> int:
        return self._runner.report(now)

    def live(self) -> list[Deployment]:
        return self._runner.live()

    def release_leases(self) -> None:
        self._runner.release_leases()


class _BrokenRunner(_RunnerStub):
    def __init__(self, sw: SoakWorld) -> None:
        super().__init__(sw)
        self.ticks = self.reports = 0

    def tick(self, now: datetime | None = None) -> list[TickOutcome]:
        self.ticks += 1
        raise RuntimeError("bug in the tick")

    def report(self, now: datetime | None = None) -> int:
        self.reports += 1
        raise RuntimeError("bug in the reports")


def test_a_failing_job_never_kills_the_scheduler(scheduler: BackgroundScheduler) -> None:
    sw = soak_world()
    did = sw.world.start()
    runner = _BrokenRunner(sw)
    soak = SoakScheduler(runner, scheduler=scheduler)
    soak.start(paused=True)

    soak.run_tick()
    soak.run_reports()

    assert (runner.ticks, runner.reports) == (1, 1)
    assert scheduler.running
    assert f"{DEADLINE_PREFIX}{did}" in deadline_jobs(scheduler)  # the re-sync still ran


@pytest.mark.parametrize(
    ("state", "clock"),
    [
        (State.CANARY, "soak_ends_at"),
        (State.AWAITING_APPROVAL, "approval_deadline"),
        (State.HELD, None),
        (State.ROLLED_BACK, None),
    ],
)
def test_deadline_of_each_state(state: State, clock: str | None) -> None:
    d = in_state(state)
    assert deadline_of(d) == (getattr(d, clock) if clock else None)


def test_intervals_must_be_positive() -> None:
    sw = soak_world()
    with pytest.raises(ValueError, match="positive"):
        SoakScheduler(sw.runner, tick_every=timedelta(0))


class _SignallingRunner(_RunnerStub):
    def __init__(self, sw: SoakWorld) -> None:
        super().__init__(sw)
        self.ticked = threading.Event()

    def tick(self, now: datetime | None = None) -> list[TickOutcome]:
        self.ticked.set()
        return []


def test_a_started_scheduler_ticks_at_once_to_catch_up_after_a_restart(
    scheduler: BackgroundScheduler,
) -> None:
    sw = soak_world()
    runner = _SignallingRunner(sw)
    soak = SoakScheduler(runner, scheduler=scheduler)

    soak.start()

    assert runner.ticked.wait(timeout=5)
    soak.shutdown()


class _SlowRunner(_RunnerStub):
    def __init__(self, sw: SoakWorld) -> None:
        super().__init__(sw)
        self.started, self.release, self.finished = threading.Event(), threading.Event(), threading.Event()

    def tick(self, now: datetime | None = None) -> list[TickOutcome]:
        self.started.set()
        self.release.wait(timeout=5)
        self.finished.set()
        return []


def test_shutdown_during_a_tick_waits_for_it_and_does_not_deadlock(scheduler: BackgroundScheduler) -> None:
    # APScheduler's shutdown(wait=True) holds its job-store lock while waiting, and the tick's re-sync needs it.
    sw = soak_world()
    sw.world.start()
    runner = _SlowRunner(sw)
    soak = SoakScheduler(runner, scheduler=scheduler)
    soak.start()
    assert runner.started.wait(timeout=5)

    stopper = threading.Thread(target=soak.shutdown)
    stopper.start()
    runner.release.set()
    stopper.join(timeout=5)

    assert not stopper.is_alive()
    assert runner.finished.is_set()
    assert not scheduler.running


def test_a_clean_shutdown_hands_the_deployments_to_the_other_replicas(scheduler: BackgroundScheduler) -> None:
    sw = soak_world()
    did = sw.world.start()
    soak = SoakScheduler(sw.runner, scheduler=scheduler)
    sw.runner.tick()
    other = TickLeases(sw.world.store, sw.world.clock, owner="other-replica")
    assert not other.take(did)  # ours while we run

    soak.shutdown()

    assert other.take(did)  # at once, not after the lease's ttl
