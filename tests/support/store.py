"""Builders for store tests: deployments, audit records and figures with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.model import AuditRecord, Deployment, PeriodFigures, State, VersionFigures
from bot.store import MEMORY, SqliteStore

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
STORE_KINDS = ("file", "memory")


def open_test_store(kind: str, tmp_path: Path) -> SqliteStore:
    """A fresh store of the given kind: "file" (WAL database under tmp_path) or "memory"."""
    if kind == "file":
        return SqliteStore(tmp_path / "store" / "canary.db")
    if kind == "memory":
        return SqliteStore(MEMORY)
    raise ValueError(f"unknown store kind {kind!r}")


def make_deployment(
    deployment_id: str = "dep-1",
    *,
    function: str = "checkout",
    alias: str = "live",
    state: State = State.CANARY,
    created_at: datetime = T0,
    **fields: Any,
) -> Deployment:
    defaults: dict[str, Any] = {
        "stable_version": "7",
        "canary_version": "8",
        "steps": (0.05, 0.25, 0.5),
        "weight": 0.05,
        "soak": timedelta(minutes=10),
        "created_by": "U024BE7LH",
        "updated_at": created_at,
    }
    return Deployment(
        id=deployment_id,
        function=function,
        alias=alias,
        state=state,
        created_at=created_at,
        **(defaults | fields),
    )


def make_audit(deployment_id: str = "dep-1", action: str = "shift", **fields: Any) -> AuditRecord:
    defaults: dict[str, Any] = {"at": T0, "actor": "U024BE7LH"}
    return AuditRecord(deployment_id=deployment_id, action=action, **(defaults | fields))


def make_figures(start: datetime, *, canary_errors: float = 0.0, minutes: int = 5) -> PeriodFigures:
    return PeriodFigures(
        start=start,
        end=start + timedelta(minutes=minutes),
        canary=VersionFigures(
            version="8", invocations=1000, errors=canary_errors, p95_ms=80.0, cache_hits=900, cache_misses=100
        ),
        stable=VersionFigures(version="7", invocations=19000, errors=3, p95_ms=75.0),
    )
