"""Store: SqliteStore's write path beside raw sqlite3, and the memory of loading a function's history.

Writes. A file store in a temporary directory (WAL, as `open_store` makes it) appends 1,000 audit records and
saves 200 deployments (compare-and-set on the revision; the deployments were created beforehand, untimed).
Baseline: raw sqlite3 in the same directory with the same durability (WAL, synchronous=NORMAL, one
transaction per write, as the store's), writing the same models as JSON (model_dump_json, inside the clock:
both sides start from the models) into plain tables with no index, trigger or check: 1,000 INSERTs and 200
UPDATEs by primary key.
Fresh databases every round; ours and the baseline alternate. Target: ours ≤ 5× the baseline.

Memory. tracemalloc's peak while `history()` loads 200 deployments of one function (JSON → models), beside the
peak of reading the same rows raw and json.loads-ing them. Target: ≤ 20 MiB.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import Check, median, ms
from bot.model import AuditRecord, Deployment, State
from bot.store import SqliteStore, open_store

AUDITS = 1000
SAVES = 200
MAX_RATIO = 5.0
MAX_HISTORY_MIB = 20.0
FUNCTION = "production-lego-api"
ALIAS = "production"
_MIB = 1024 * 1024
_T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def run(*, audits: int = AUDITS, saves: int = SAVES, repeats: int = 7) -> list[Check]:
    deployments = [deployment(i) for i in range(saves)]
    records = [audit_record(i, deployments[i % len(deployments)]) for i in range(audits)]
    ours_s: list[float] = []
    base_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="canary-bench-store-") as tmp:
        folder = Path(tmp)
        for r in range(repeats):
            ours_s.append(_time_ours(folder / f"ours-{r}.db", deployments, records))
            base_s.append(_time_raw(folder / f"raw-{r}.db", deployments, records))
        ours_peak, base_peak, loaded = _history_peaks(
            folder / "ours-0.db", folder / "raw-0.db", len(deployments)
        )
    ours, base = median(ours_s), median(base_s)
    writes = audits + saves
    return [
        Check(
            name=f"store: {audits:,} audits + {saves:,} saves",
            ours=ms(ours),
            baseline=ms(base),
            unit="ms",
            target=f"≤ {MAX_RATIO:g}× raw sqlite3",
            passed=ours <= MAX_RATIO * base,
            note=f"median of {repeats}; {ms(ours) / writes * 1000:.0f} vs {ms(base) / writes * 1000:.0f} µs per write",
        ),
        Check(
            name=f"store: history of {len(deployments)} deployments, peak",
            ours=ours_peak / _MIB,
            baseline=base_peak / _MIB,
            unit="MiB",
            target=f"≤ {MAX_HISTORY_MIB:g} MiB",
            passed=ours_peak / _MIB <= MAX_HISTORY_MIB and loaded == len(deployments),
            note=f"tracemalloc; {loaded} deployments loaded; baseline: raw rows + json.loads",
        ),
    ]


# ---------------------------------------------------------------- ours
def _time_ours(db: Path, deployments: Sequence[Deployment], records: Sequence[AuditRecord]) -> float:
    store = open_store(f"sqlite:///{db}")
    try:
        created = [store.create(d) for d in deployments]  # untimed: the saves below update these
        updated = [d.model_copy(update={"last_verdict": "✅ all within thresholds"}) for d in created]
        started = time.perf_counter()
        for record in records:
            store.append_audit(record)
        for d in updated:
            store.save(d)
        return time.perf_counter() - started
    finally:
        store.close()


# ---------------------------------------------------------------- baseline: raw sqlite3
_RAW_SCHEMA = (
    "CREATE TABLE audit (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE deployments (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
)


def _raw_connection(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)  # autocommit: every statement is its own transaction
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _time_raw(db: Path, deployments: Sequence[Deployment], records: Sequence[AuditRecord]) -> float:
    conn = _raw_connection(db)
    try:
        for statement in _RAW_SCHEMA:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO deployments (id, body) VALUES (?, ?)",
            [(d.id, d.model_dump_json()) for d in deployments],
        )
        updated = [
            d.model_copy(update={"last_verdict": "✅ all within thresholds", "revision": 1})
            for d in deployments
        ]
        started = time.perf_counter()
        # Both sides start from the models: serializing them is part of storing them.
        for record in records:
            conn.execute("INSERT INTO audit (body) VALUES (?)", (record.model_dump_json(),))
        for d in updated:
            conn.execute("UPDATE deployments SET body = ? WHERE id = ?", (d.model_dump_json(), d.id))
        return time.perf_counter() - started
    finally:
        conn.close()


# ---------------------------------------------------------------- memory
def _history_peaks(ours_db: Path, raw_db: Path, count: int) -> tuple[int, int, int]:
    """(ours peak bytes, baseline peak bytes, deployments ours loaded)."""
    with SqliteStore(ours_db) as store:
        store.history(FUNCTION, ALIAS, limit=count)  # warm: connection, statement cache, validators
        loaded, ours_peak = _peak(lambda: len(store.history(FUNCTION, ALIAS, limit=count)))
    conn = _raw_connection(raw_db)
    try:

        def raw() -> int:
            rows = conn.execute(
                "SELECT body FROM deployments ORDER BY rowid DESC LIMIT ?", (count,)
            ).fetchall()
            return len([json.loads(body) for (body,) in rows])

        raw()
        _, base_peak = _peak(raw)
    finally:
        conn.close()
    return ours_peak, base_peak, loaded


def _peak(load: Any) -> tuple[int, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


# ---------------------------------------------------------------- records as the bot writes them
def deployment(i: int) -> Deployment:
    """A finished canary of the seed function, with the fields a real one ends with."""
    created = _T0 + timedelta(hours=i)
    return Deployment(
        id=f"d-20261101-{i:06x}",
        function=FUNCTION,
        alias=ALIAS,
        stable_version=str(i + 1),
        canary_version=str(i + 2),
        steps=(0.05, 0.25, 0.5),
        step_index=2,
        weight=0.5,
        soak=timedelta(hours=1),
        state=State.PROMOTED,
        created_by="slack:U0ALICE (alice)",
        created_at=created,
        updated_at=created + timedelta(hours=3, minutes=20),
        step_started_at=created + timedelta(hours=2),
        soak_ends_at=created + timedelta(hours=3),
        alias_revision="6f1c2a9e-4c1b-4f7e-9d2a-0b5e8c3d7a10",
        last_verdict="✅ all within thresholds",
        reason="promoted by slack:U0BOB (bob) after 3 clean steps",
        ended_by="slack:U0BOB (bob)",
        ended_at=created + timedelta(hours=3, minutes=20),
        changes={"REDIS_URL": "redis://cache.internal:6379/0"},
        channel="C0DEPLOYS",
        thread_ts="1700000000.000100",
    )


def audit_record(i: int, d: Deployment) -> AuditRecord:
    """One audited alias change, before and after, as CanaryService writes them."""
    before = {"version": d.stable_version, "weights": {}, "revision_id": f"rev-{i:06d}-a"}
    after = {
        "version": d.stable_version,
        "weights": {d.canary_version: 0.05},
        "revision_id": f"rev-{i:06d}-b",
    }
    return AuditRecord(
        deployment_id=d.id,
        at=_T0 + timedelta(minutes=i),
        actor="slack:U0ALICE (alice)",
        action="start" if i % 2 else "next_step",
        phase="done",
        from_state=State.PLANNED,
        to_state=State.CANARY,
        reason="step 1 of 3 soaked clean",
        alias_before=before,
        alias_after=after,
        detail={"weight": 0.05, "step_index": 0},
    )
