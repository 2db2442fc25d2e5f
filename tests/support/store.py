"""Builders for store tests: deployments, audit records and figures with sensible defaults."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from moto import mock_aws

from bot.aws.clients import aws_client
from bot.model import AuditRecord, Deployment, PeriodFigures, State, VersionFigures
from bot.store import MEMORY, DynamoStore, SqliteStore
from bot.store.dynamodb import create_table

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
STORE_KINDS = ("file", "memory", "dynamodb")
TABLE = "canary-bot-test"


def open_test_store(kind: str, tmp_path: Path) -> SqliteStore | DynamoStore:
    """A fresh store of the given kind: "file" (WAL database under tmp_path), "memory", or "dynamodb" (a
    table in moto: call it inside `mock_aws()`, as `store_of_kind` does)."""
    if kind == "file":
        return SqliteStore(tmp_path / "store" / "canary.db")
    if kind == "memory":
        return SqliteStore(MEMORY)
    if kind == "dynamodb":
        client = aws_client("dynamodb", region="us-east-1")
        create_table(client, TABLE)
        return DynamoStore(client, TABLE)
    raise ValueError(f"unknown store kind {kind!r}")


_MOTO_REQUEST_LOCK = threading.RLock()


@contextlib.contextmanager
def atomic_moto_dynamodb() -> Iterator[None]:
    """Make moto handle one DynamoDB request at a time.

    DynamoDB applies each request (a conditional put, a TransactWriteItems) atomically; moto 5 checks the
    conditions and then writes without a lock, so two threads can both pass `attribute_not_exists`. Serialising
    its request handling gives back the per-request atomicity the store relies on (and nothing more: the store
    still races between its own requests, as against DynamoDB).
    """
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def serialised(self: Any) -> Any:
        with _MOTO_REQUEST_LOCK:
            return original(self)

    DynamoHandler.call_action = serialised  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]


@contextlib.contextmanager
def store_of_kind(kind: str, tmp_path: Path) -> Iterator[SqliteStore | DynamoStore]:
    """open_test_store, with moto (one request at a time) around it for "dynamodb"; closed at the end."""
    moto: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if kind == "dynamodb":
        moto = contextlib.ExitStack()
        moto.enter_context(mock_aws())
        moto.enter_context(atomic_moto_dynamodb())
    with moto:
        store = open_test_store(kind, tmp_path)
        try:
            yield store
        finally:
            store.close()


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
