"""DynamoDB store beside SQLite: one soak tick at 1, 50 and 500 live canaries, its DynamoDB calls and latency.

For each size, the soaking world of bench/tick.py (FakeTraffic, FakeMetrics with a healthy hour per canary,
the clock mid-soak) is built on a SQLite file store and ticked once (the due report, the noted verdict). Its
state — deployments, live guards, figures, the report keys — is then copied into a DynamoDB table on moto
(in-process), and a second runner on the same traffic, metrics and clock ticks on DynamoDB. The timed ticks
judge every canary and change nothing (CONTINUE): the steady state a canary spends most of its life in.

Counted: every DynamoDB request of one tick, by operation (a botocore event hook). Timed: the tick on each
store (median of `repeats`).
Targets: DynamoDB calls per canary at the largest size ≤ 1.2 × those at the middle size (linear growth, no
worse); and the DynamoDB tick per canary at the largest size ≤ 3 × that at the middle size.

moto is not DynamoDB: its Query reads and sorts the whole table (DynamoDB reads one partition), and its
TransactWriteItems deep-copies the table once per item. The copy is not on a steady tick's path (it makes no
transaction); the Query scan is, so the benchmark gives moto's base-table Query a partition lookup — what
DynamoDB does — so that the latency at 500 canaries measures the store's calls, not moto's scan. Latencies
on moto are a relative measure: a real table answers in single-digit milliseconds per call, over a network.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto import mock_aws

from bench import tick
from bench.harness import Check, median, ms
from bot.aws.clients import aws_client
from bot.clock import ManualClock
from bot.composition import soak_runner
from bot.config import Policy
from bot.model import Deployment
from bot.service import CanaryService
from bot.soak import SoakRunner
from bot.store import DynamoStore, SqliteStore
from bot.store.dynamodb import _deployment_item, _live_guard, create_table
from bot.verbs import StartArgs
from canary_demo.fakes.metrics import FakeMetrics
from canary_demo.fakes.traffic import FakeTraffic

SIZES = (1, 50, 500)
LINEAR_SLACK = 1.2
LATENCY_SLACK = 3.0


@dataclass(frozen=True, slots=True)
class SizeFigures:
    canaries: int
    sqlite_tick_s: float
    dynamo_tick_s: float
    dynamo_calls: int  # requests of one tick (every timed tick made the same number)
    by_operation: dict[str, int]


def run(*, sizes: Sequence[int] = SIZES, repeats: int = 1) -> list[Check]:
    measured: list[SizeFigures] = []
    with tempfile.TemporaryDirectory(prefix="canary-bench-dynamo-") as tmp, mock_aws(), _partition_queries():
        for n in sizes:
            gc.collect()
            measured.append(measure(n, Path(tmp) / f"tick-{n}.db", repeats=repeats))
    checks = [latency_check(m) for m in measured]
    if len(measured) >= 2:
        middle, large = measured[-2], measured[-1]
        checks.append(calls_check(middle, large))
        checks.append(scaling_check(middle, large))
    return checks


# ---------------------------------------------------------------- checks
def latency_check(m: SizeFigures) -> Check:
    ops = ", ".join(f"{op} {count}" for op, count in sorted(m.by_operation.items()))
    return Check(
        name=f"store tick, {m.canaries} canar{'y' if m.canaries == 1 else 'ies'}: DynamoDB (moto) vs SQLite",
        ours=ms(m.dynamo_tick_s),
        baseline=ms(m.sqlite_tick_s),
        unit="ms",
        target="reported; calls below",
        passed=m.dynamo_calls > 0,
        note=f"{m.dynamo_calls} DynamoDB calls ({m.dynamo_calls / m.canaries:.1f}/canary): {ops}",
    )


def calls_check(middle: SizeFigures, large: SizeFigures) -> Check:
    per_middle, per_large = middle.dynamo_calls / middle.canaries, large.dynamo_calls / large.canaries
    return Check(
        name=f"DynamoDB calls per tick, {large.canaries} vs {middle.canaries} canaries",
        ours=large.dynamo_calls,
        baseline=middle.dynamo_calls,
        unit="calls",
        target=f"per canary ≤ {LINEAR_SLACK:g}× (linear)",
        passed=per_large <= LINEAR_SLACK * per_middle,
        note=f"per canary {per_middle:.2f} → {per_large:.2f}",
    )


def scaling_check(middle: SizeFigures, large: SizeFigures) -> Check:
    per_middle, per_large = middle.dynamo_tick_s / middle.canaries, large.dynamo_tick_s / large.canaries
    return Check(
        name=f"DynamoDB tick, {large.canaries} vs {middle.canaries} canaries",
        ours=ms(large.dynamo_tick_s),
        baseline=ms(middle.dynamo_tick_s),
        unit="ms",
        target=f"per canary ≤ {LATENCY_SLACK:g}×",
        passed=per_large <= LATENCY_SLACK * per_middle,
        note=f"per canary {ms(per_middle):.2f} → {ms(per_large):.2f} ms (moto)",
    )


# ---------------------------------------------------------------- measuring
def measure(canaries: int, db: Path, *, repeats: int) -> SizeFigures:
    sqlite = SqliteStore(db)
    try:
        service, metrics = soaking_world(canaries, sqlite)
        sqlite_runner = soak_runner(service, metrics, chart=tick._no_chart)
        tick._expect_steady(sqlite_runner.tick(), canaries)  # posts the due report, notes the verdict

        client = aws_client("dynamodb", region="us-east-1")
        table = f"bench-{canaries}"
        create_table(client, table)
        dynamo = DynamoStore(client, table)
        copy_state(sqlite, dynamo, client, table)
        calls: collections.Counter[str] = collections.Counter()
        client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update([model.name]))
        dynamo_service = CanaryService(
            traffic=service.ports.traffic,
            store=dynamo,
            policy=service.ports.policy,
            clock=service.ports.clock,
        )
        dynamo_runner = soak_runner(dynamo_service, metrics, chart=tick._no_chart)

        sqlite_ticks: list[float] = []
        dynamo_ticks: list[float] = []
        per_tick: list[collections.Counter[str]] = []
        for _ in range(repeats):
            sqlite_ticks.append(_timed(sqlite_runner, canaries))
            calls.clear()
            dynamo_ticks.append(_timed(dynamo_runner, canaries))
            per_tick.append(collections.Counter(calls))
        if any(c != per_tick[0] for c in per_tick):
            raise RuntimeError(f"DynamoDB calls differ between identical ticks: {per_tick}")
        return SizeFigures(
            canaries=canaries,
            sqlite_tick_s=median(sqlite_ticks),
            dynamo_tick_s=median(dynamo_ticks),
            dynamo_calls=sum(per_tick[0].values()),
            by_operation=dict(per_tick[0]),
        )
    finally:
        sqlite.close()


def _timed(runner: SoakRunner, canaries: int) -> float:
    started = time.perf_counter()
    outcomes = runner.tick()
    elapsed = time.perf_counter() - started
    tick._expect_steady(outcomes, canaries)
    return elapsed


def copy_state(sqlite: SqliteStore, dynamo: DynamoStore, client: Any, table: str) -> None:
    """What the SQLite world holds after its first tick, written into the table without transactions (on
    moto a transaction copies the whole table per item: 500 of them would take minutes)."""
    live = sqlite.list_live()
    items: list[dict[str, Any]] = []
    for order, d in enumerate(live):
        items += [_deployment_item(d, order), _live_guard(d)]
    for start in range(0, len(items), 25):
        client.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        )
    for d in live:
        dynamo.save_figures(d.id, sqlite.figures_for(d.id))
    raw = sqlite3.connect(sqlite.location)
    try:
        for key, _claimed in raw.execute("SELECT key, claimed_at FROM idempotency_keys"):
            dynamo.claim(key, live[0].created_at)
    finally:
        raw.close()


def soaking_world(canaries: int, store: SqliteStore) -> tuple[CanaryService, FakeMetrics]:
    """bench/tick.py's world, with as many functions as canaries."""
    names = tick.function_names(max(canaries, 1))
    traffic = FakeTraffic()
    for name in names:
        traffic.add_function(name, versions=["1", "2"])
        traffic.add_alias(name, tick.ALIAS, "1")
    clock = ManualClock()
    policy: Policy = tick.bench_policy(names)
    service = CanaryService(traffic=traffic, store=store, policy=policy, clock=clock)
    actor = tick._ACTOR
    started: list[Deployment] = []
    for name in names[:canaries]:
        plan = service.plan(StartArgs(function=name, version="2"), actor)
        started.append(service.confirm(plan.deployment.id, actor).deployment)
    metrics = FakeMetrics()
    tick.record_hour(metrics, traffic, started, clock)
    clock.advance(tick.DATA)
    return service, metrics


@contextlib.contextmanager
def _partition_queries() -> Iterator[None]:
    """moto's base-table Query scans and sorts every item of the table; DynamoDB reads the one partition.
    Hand moto the partition (index queries are left as they are)."""
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("index_name") is not None or hash_key is None:
            return original(self, hash_key, *args, **kwargs)
        partition = self.items.get(hash_key, {})
        self.all_items = lambda: list(partition.values())  # instance attribute shadows the method
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query = original  # type: ignore[method-assign]
