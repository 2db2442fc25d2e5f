"""StorePort on SQLite: the embedded, durable store (WAL), and with ":memory:" the in-memory fake for tests.

Invariants live in the database, not in Python checks made before a write:
- a partial unique index allows one live deployment per function:alias;
- saves are compare-and-set on `revision`;
- triggers make the audit table append-only;
- idempotency keys are a primary key claimed with INSERT OR IGNORE.

Threads: the bot calls the store from Slack workers, the scheduler and the alarm poller at once. A file store
gives each thread its own connection (readers never wait for a writer, WAL); its writers take a lock of the
process first, then SQLite's (BEGIN IMMEDIATE), which busy_timeout arbitrates between processes.
":memory:" is private to one connection, so that store shares a single connection behind a lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from bot.intents import Intent
from bot.model import AuditRecord, DeployLock, Deployment, PeriodFigures, State
from bot.outbox_model import OutboxMessage
from bot.ports import IntentInProgress, LiveDeploymentExists, StaleDeployment, UnknownDeployment
from bot.store.schema import migrate

MEMORY = ":memory:"

_Model = TypeVar("_Model", bound=BaseModel)

_INSERT_DEPLOYMENT = """
    INSERT INTO deployments (id, function, alias, state, live, created_at, updated_at, revision, watch_until,
                             body)
    VALUES (:id, :function, :alias, :state, :live, :created_at, :updated_at, :revision, :watch_until, :body)
"""
# Compare-and-set: matches no row unless the stored revision is the one the caller read.
_UPDATE_DEPLOYMENT_IF_REVISION = """
    UPDATE deployments
    SET function = :function, alias = :alias, state = :state, live = :live, created_at = :created_at,
        updated_at = :updated_at, revision = :revision, watch_until = :watch_until, body = :body
    WHERE id = :id AND revision = :expected_revision
"""
_HISTORY = """
    SELECT body FROM deployments
    WHERE function = :function AND (:alias IS NULL OR alias = :alias)
    ORDER BY created_at DESC, rowid DESC
    LIMIT :limit
"""


class SqliteStore:
    """Deployments, audit log, idempotency keys and metric figures in one SQLite database."""

    def __init__(self, path: str | os.PathLike[str] = MEMORY, *, busy_timeout_s: float = 5.0) -> None:
        target = os.fspath(path)
        self._location = target
        busy_timeout_ms = round(busy_timeout_s * 1000)

        def connect() -> sqlite3.Connection:
            return _connect(target, busy_timeout_ms)

        self._busy_timeout_s = busy_timeout_s
        # Writers of this process queue here rather than in SQLite's busy handler, which sleeps 1, 2, 5, 10,
        # 15, 20, 25… ms between retries: under load a short write (the replay claim on every Slack request)
        # slept behind the background writers for tens of milliseconds (bench/README.md, "peers"); claims go
        # first. Other processes are still arbitrated by busy_timeout.
        self._writer = _WriterQueue()
        self._connections: _Connections
        if target == MEMORY:
            self._connections = _SharedConnection(connect())
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._connections = _PerThreadConnections(connect)
        try:
            with self._connections.acquire() as conn:
                if target != MEMORY:
                    # Persistent in the file: set once here, not per connection.
                    _use_wal(conn, busy_timeout_s)
                self._schema_version = migrate(conn, where=target)
        except BaseException:
            self._connections.close()
            raise

    # ------------------------------------------------------------ lifecycle
    @property
    def location(self) -> str:
        """The database file, or ":memory:"."""
        return self._location

    @property
    def schema_version(self) -> int:
        return self._schema_version

    def close(self) -> None:
        self._connections.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ deployments
    def create(self, deployment: Deployment) -> Deployment:
        stored = _in_utc(deployment)
        try:
            with self._transaction() as conn:
                conn.execute(_INSERT_DEPLOYMENT, _deployment_row(stored))
        except sqlite3.IntegrityError as exc:
            raise self._explain_conflict(exc, stored) from exc
        return stored

    def save(self, deployment: Deployment) -> Deployment:
        try:
            with self._transaction() as conn:
                stored = _keep_thread(conn, _in_utc(deployment)).model_copy(
                    update={"revision": deployment.revision + 1}
                )
                row = _deployment_row(stored) | {"expected_revision": deployment.revision}
                updated = conn.execute(_UPDATE_DEPLOYMENT_IF_REVISION, row).rowcount
                if updated == 0:
                    current = conn.execute(
                        "SELECT revision FROM deployments WHERE id = ?", (deployment.id,)
                    ).fetchone()
                    raise _stale(deployment, None if current is None else int(current["revision"]))
        except sqlite3.IntegrityError as exc:
            raise self._explain_conflict(exc, stored) from exc
        return stored

    def record_thread(self, deployment_id: str, channel: str, thread_ts: str) -> None:
        """Remember the deployment's Slack thread, once, without bumping its revision: it is bookkeeping, and
        a button drawn before the parent message went out must stay current. Saves keep it (write-once)."""
        with self._transaction() as conn:
            row = conn.execute("SELECT body FROM deployments WHERE id = ?", (deployment_id,)).fetchone()
            if row is None:
                return
            current = _load_deployment(row["body"])
            if current.thread_ts:
                return
            updated = current.model_copy(update={"channel": channel, "thread_ts": thread_ts})
            conn.execute(
                "UPDATE deployments SET body = ? WHERE id = ?", (updated.model_dump_json(), deployment_id)
            )

    def get(self, deployment_id: str) -> Deployment | None:
        rows = self._query("SELECT body FROM deployments WHERE id = ?", (deployment_id,))
        return _load_deployment(rows[0]["body"]) if rows else None

    def live_for(self, function: str, alias: str) -> Deployment | None:
        rows = self._query(
            "SELECT body FROM deployments WHERE function = ? AND alias = ? AND live = 1", (function, alias)
        )
        return _load_deployment(rows[0]["body"]) if rows else None

    def list_live(self) -> list[Deployment]:
        """Oldest first."""
        rows = self._query("SELECT body FROM deployments WHERE live = 1 ORDER BY created_at, rowid")
        return [_load_deployment(row["body"]) for row in rows]

    def list_watching(self, now: datetime) -> list[Deployment]:
        """Promoted deployments whose watch ends after `now`, oldest first."""
        rows = self._query(
            "SELECT body FROM deployments WHERE watch_until > ? ORDER BY created_at, rowid",
            (_stamp(_require_aware(now, "list_watching(now)")),),
        )
        return [_load_deployment(row["body"]) for row in rows]

    def history(self, function: str, alias: str | None = None, limit: int = 20) -> list[Deployment]:
        """Newest first by created_at (ties: latest inserted first)."""
        if limit < 1:
            # SQLite reads a negative LIMIT as "no limit"; refuse rather than return everything.
            raise ValueError(f"history limit must be at least 1, not {limit}")
        rows = self._query(_HISTORY, {"function": function, "alias": alias, "limit": limit})
        return [_load_deployment(row["body"]) for row in rows]

    # ------------------------------------------------------------ audit
    def append_audit(self, record: AuditRecord) -> None:
        with self._transaction() as conn:
            self._insert_audit(conn, record)

    @staticmethod
    def _insert_audit(conn: sqlite3.Connection, record: AuditRecord) -> None:
        record = _in_utc(record)
        plain = record.model_dump(mode="json")
        conn.execute(
            "INSERT INTO audit (deployment_id, at, actor, action, phase, from_state, to_state, reason,"
            " alias_before, alias_after, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.deployment_id,
                _stamp(record.at),
                record.actor,
                record.action,
                record.phase,
                plain["from_state"],
                plain["to_state"],
                record.reason,
                _json_or_null(plain["alias_before"]),
                _json_or_null(plain["alias_after"]),
                json.dumps(plain["detail"]),
            ),
        )

    def audit_for(self, deployment_id: str) -> list[AuditRecord]:
        """Oldest first (in the order appended)."""
        rows = self._query(
            "SELECT deployment_id, at, actor, action, phase, from_state, to_state, reason, alias_before,"
            " alias_after, detail FROM audit WHERE deployment_id = ? ORDER BY id",
            (deployment_id,),
        )
        return [_load_audit(row) for row in rows]

    # ------------------------------------------------------------ idempotency
    def claim(self, key: str, now: datetime) -> bool:
        # Urgent: every signed Slack request claims its key before it is acked (handlers/replays.py). One
        # statement, so SQLite's autocommit makes it its own transaction: no BEGIN/COMMIT round trips, each of
        # which gives up the GIL and waits to get it back while other threads run.
        with self._single_statement(urgent=True) as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO idempotency_keys (key, claimed_at) VALUES (?, ?)",
                (key, _stamp(_require_aware(now, "claim(now)"))),
            ).rowcount
        return inserted == 1

    def is_claimed(self, key: str) -> bool:
        return bool(self._query("SELECT 1 FROM idempotency_keys WHERE key = ?", (key,)))

    def release(self, key: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM idempotency_keys WHERE key = ?", (key,))

    # ------------------------------------------------------------ figures
    def save_figures(self, deployment_id: str, figures: Sequence[PeriodFigures]) -> None:
        rows = [(deployment_id, _stamp(f.start), _in_utc(f).model_dump_json()) for f in figures]
        try:
            with self._transaction() as conn:
                conn.executemany(
                    "INSERT INTO figures (deployment_id, period_start, body) VALUES (?, ?, ?)"
                    " ON CONFLICT (deployment_id, period_start) DO UPDATE SET body = excluded.body"
                    " WHERE body != excluded.body",  # a tick re-fetches the step: most rows are unchanged
                    rows,
                )
        except sqlite3.IntegrityError as exc:  # the foreign key to deployments
            raise UnknownDeployment(
                f"no deployment {deployment_id} in the store: its figures are refused"
            ) from exc

    def figures_for(self, deployment_id: str) -> list[PeriodFigures]:
        """Oldest first."""
        rows = self._query(
            "SELECT body FROM figures WHERE deployment_id = ? ORDER BY period_start", (deployment_id,)
        )
        return [_figures_from_json(row["body"]) for row in rows]

    # ------------------------------------------------------------ intents
    def open_intent(
        self, intent: Intent, *, supersede: bool = False, deployment_revision: int | None = None
    ) -> tuple[Intent, list[Intent]]:
        """Insert an open intent; with `supersede`, first mark the deployment's open one superseded.

        Returns the stored intent and the intents it superseded. Raises IntentInProgress when another intent
        of the deployment is open and `supersede` is False (the database's partial unique index decides), and
        StaleDeployment when `deployment_revision` is given and the deployment has moved on since.
        """
        intent = _in_utc(intent)
        superseded: list[Intent] = []
        try:
            with self._transaction() as conn:
                if deployment_revision is not None:
                    row = conn.execute(
                        "SELECT revision FROM deployments WHERE id = ?", (intent.deployment_id,)
                    ).fetchone()
                    if row is None or int(row["revision"]) != deployment_revision:
                        raise StaleDeployment(
                            f"deployment {intent.deployment_id} changed since it was read "
                            f"(revision {None if row is None else row['revision']}, ours {deployment_revision})"
                        )
                if supersede:
                    for row in conn.execute(
                        "SELECT body FROM intents WHERE deployment_id = ? AND status = 'open' AND id != ?",
                        (intent.deployment_id, intent.id),
                    ).fetchall():
                        old = Intent.model_validate_json(row["body"]).model_copy(
                            update={"status": "superseded"}
                        )
                        self._write_intent(conn, old)
                        superseded.append(old)
                conn.execute(
                    "INSERT INTO intents (id, deployment_id, kind, status, priority, created_at, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        intent.id,
                        intent.deployment_id,
                        intent.kind,
                        intent.status,
                        intent.priority,
                        _stamp(intent.created_at),
                        intent.model_dump_json(),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if "intents.deployment_id" in str(exc):
                holder = self.open_intent_for(intent.deployment_id)
                what = f"{holder.kind} by {holder.actor}" if holder else "another action"
                raise IntentInProgress(
                    f"{what} on this deployment is still being applied; nothing was changed by yours"
                ) from exc
            raise
        return intent, superseded

    def complete_intent(self, intent: Intent, deployment: Deployment, audit: AuditRecord) -> Deployment:
        """Save the deployment (compare-and-set on revision), append the audit line and save the intent, all
        in one transaction: a crash leaves either none or all of them. Raises StaleDeployment."""
        try:
            with self._transaction() as conn:
                stored = _keep_thread(conn, _in_utc(deployment)).model_copy(
                    update={"revision": deployment.revision + 1}
                )
                row = _deployment_row(stored) | {"expected_revision": deployment.revision}
                if conn.execute(_UPDATE_DEPLOYMENT_IF_REVISION, row).rowcount == 0:
                    current = conn.execute(
                        "SELECT revision FROM deployments WHERE id = ?", (deployment.id,)
                    ).fetchone()
                    raise _stale(deployment, None if current is None else int(current["revision"]))
                self._insert_audit(conn, audit)
                self._write_intent(conn, _in_utc(intent))
        except sqlite3.IntegrityError as exc:
            raise self._explain_conflict(exc, stored) from exc
        return stored

    def save_intent(self, intent: Intent) -> Intent:
        intent = _in_utc(intent)
        with self._transaction() as conn:
            self._write_intent(conn, intent)
        return intent

    def get_intent(self, intent_id: str) -> Intent | None:
        rows = self._query("SELECT body FROM intents WHERE id = ?", (intent_id,))
        return _in_utc(Intent.model_validate_json(rows[0]["body"])) if rows else None

    def open_intent_for(self, deployment_id: str) -> Intent | None:
        rows = self._query(
            "SELECT body FROM intents WHERE deployment_id = ? AND status = 'open'", (deployment_id,)
        )
        return _in_utc(Intent.model_validate_json(rows[0]["body"])) if rows else None

    def unfinished_intents(self) -> list[Intent]:
        """Open intents and recorded ones whose follow-up is not done: rollbacks first, then oldest first."""
        rows = self._query(
            "SELECT body FROM intents WHERE status IN ('open', 'recorded') ORDER BY priority, created_at"
        )
        return [_in_utc(Intent.model_validate_json(row["body"])) for row in rows]

    def open_intents(self) -> list[Intent]:
        """Rollbacks first, then oldest first."""
        rows = self._query("SELECT body FROM intents WHERE status = 'open' ORDER BY priority, created_at")
        return [_in_utc(Intent.model_validate_json(row["body"])) for row in rows]

    def intents_for(self, deployment_id: str) -> list[Intent]:
        """Oldest first."""
        rows = self._query(
            "SELECT body FROM intents WHERE deployment_id = ? ORDER BY created_at, rowid", (deployment_id,)
        )
        return [_in_utc(Intent.model_validate_json(row["body"])) for row in rows]

    @staticmethod
    def _write_intent(conn: sqlite3.Connection, intent: Intent) -> None:
        conn.execute(
            "UPDATE intents SET status = ?, body = ? WHERE id = ?",
            (intent.status, intent.model_dump_json(), intent.id),
        )

    # ------------------------------------------------------------ leases
    def acquire_lease(self, name: str, owner: str, now: datetime, ttl_seconds: float) -> int | None:
        """Hold `name` until now + ttl. Returns the fencing token, or None while someone else holds it.

        The token grows whenever the lease changes hands (or is taken again after lapsing), never when its
        holder renews it.
        """
        now = _require_aware(now, "acquire_lease(now)")
        expires = _stamp(now + timedelta(seconds=ttl_seconds))
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT owner, expires_at, token FROM leases WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO leases (name, owner, expires_at, token) VALUES (?, ?, ?, 1)",
                    (name, owner, expires),
                )
                return 1
            held = row["expires_at"] > _stamp(now)
            if held and row["owner"] != owner:
                return None
            token = int(row["token"]) if held and row["owner"] == owner else int(row["token"]) + 1
            conn.execute(
                "UPDATE leases SET owner = ?, expires_at = ?, token = ? WHERE name = ?",
                (owner, expires, token, name),
            )
            return token

    def release_lease(self, name: str, owner: str) -> None:
        """Let the lease lapse now, if `owner` still holds it (the token stays, so it keeps growing)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ?",
                (_stamp(datetime(1970, 1, 1, tzinfo=UTC)), name, owner),
            )

    def holds_lease(self, name: str, owner: str, token: int, now: datetime) -> bool:
        rows = self._query("SELECT owner, expires_at, token FROM leases WHERE name = ?", (name,))
        if not rows:
            return False
        row = rows[0]
        return bool(row["owner"] == owner and int(row["token"]) == token and row["expires_at"] > _stamp(now))

    # ------------------------------------------------------------ outbox
    def enqueue(self, message: OutboxMessage) -> bool:
        """Add a message unless its key is already there. True when added."""
        message = _in_utc(message)
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (key, lane, status, next_attempt_at, created_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    message.key,
                    message.lane,
                    message.status,
                    _stamp(message.next_attempt_at),
                    _stamp(message.created_at),
                    message.model_dump_json(),
                ),
            )
            return cursor.rowcount == 1

    def outbox_heads(self, now: datetime, limit: int = 50) -> list[OutboxMessage]:
        """The first pending message of every lane whose next attempt is due, oldest first."""
        rows = self._query(
            "SELECT id, body FROM outbox o WHERE status = 'pending' AND next_attempt_at <= ?"
            " AND id = (SELECT MIN(id) FROM outbox WHERE lane = o.lane AND status = 'pending')"
            " ORDER BY id LIMIT ?",
            (_stamp(_require_aware(now, "outbox_heads(now)")), limit),
        )
        return [_load_outbox(row) for row in rows]

    def outbox_message(self, key: str) -> OutboxMessage | None:
        rows = self._query("SELECT id, body FROM outbox WHERE key = ?", (key,))
        return _load_outbox(rows[0]) if rows else None

    def outbox_pending(self) -> int:
        return int(self._query("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'")[0]["n"])

    def save_outbox(self, message: OutboxMessage) -> OutboxMessage:
        if message.id is None:
            raise ValueError("save_outbox needs a message read from the store (it has no id)")
        message = _in_utc(message)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE outbox SET status = ?, next_attempt_at = ?, body = ? WHERE id = ?",
                (
                    message.status,
                    _stamp(message.next_attempt_at),
                    message.model_dump_json(exclude={"id"}),
                    message.id,
                ),
            )
        return message

    # ------------------------------------------------------------ deploy locks
    def put_lock(self, lock: DeployLock) -> None:
        lock = _in_utc(lock)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO deploy_locks (function, alias, version, since, body) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (function, alias, version) DO UPDATE SET since = excluded.since,"
                " body = excluded.body",
                (
                    lock.function,
                    lock.alias,
                    lock.version or "*",
                    _stamp(_require_aware(lock.since, "put_lock")),
                    lock.model_dump_json(),
                ),
            )

    def locks_for(self, function: str, alias: str) -> list[DeployLock]:
        rows = self._query(
            "SELECT body FROM deploy_locks WHERE function = ? AND alias = ? ORDER BY since, version",
            (function, alias),
        )
        return [DeployLock.model_validate_json(row["body"]) for row in rows]

    def remove_locks(self, function: str, alias: str) -> list[DeployLock]:
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT body FROM deploy_locks WHERE function = ? AND alias = ? ORDER BY since, version",
                (function, alias),
            ).fetchall()
            conn.execute("DELETE FROM deploy_locks WHERE function = ? AND alias = ?", (function, alias))
        return [DeployLock.model_validate_json(row["body"]) for row in rows]

    def list_locks(self) -> list[DeployLock]:
        rows = self._query("SELECT body FROM deploy_locks ORDER BY function, alias, since, version")
        return [DeployLock.model_validate_json(row["body"]) for row in rows]

    # ------------------------------------------------------------ user groups
    def save_group_members(self, group_id: str, members: Sequence[str], now: datetime) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO group_members (group_id, members, seen_at) VALUES (?, ?, ?)"
                " ON CONFLICT (group_id) DO UPDATE SET members = excluded.members, seen_at = excluded.seen_at",
                (group_id, json.dumps(sorted(members)), _stamp(_require_aware(now, "save_group_members"))),
            )

    def group_members(self, group_id: str) -> tuple[frozenset[str], datetime] | None:
        rows = self._query("SELECT members, seen_at FROM group_members WHERE group_id = ?", (group_id,))
        if not rows:
            return None
        return frozenset(json.loads(rows[0]["members"])), datetime.fromisoformat(rows[0]["seen_at"])

    # ------------------------------------------------------------ plumbing
    @contextmanager
    def _transaction(self, *, urgent: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction. IMMEDIATE takes the write lock up front, so busy_timeout can queue writers;
        a DEFERRED one upgrading from read to write would fail with SQLITE_BUSY without waiting.
        `urgent`: someone is waiting on it (a Slack ack): it goes before the process's other writers."""
        if not self._writer.acquire(urgent=urgent, timeout=self._busy_timeout_s):
            raise sqlite3.OperationalError("database is locked (by another writer of this process)")
        try:
            with self._connections.acquire() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        finally:
            self._writer.release()

    @contextmanager
    def _single_statement(self, *, urgent: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection for ONE writing statement, which SQLite commits on its own (autocommit)."""
        if not self._writer.acquire(urgent=urgent, timeout=self._busy_timeout_s):
            raise sqlite3.OperationalError("database is locked (by another writer of this process)")
        try:
            with self._connections.acquire() as conn:
                yield conn
        finally:
            self._writer.release()

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._connections.acquire() as conn:
            return conn.execute(sql, params).fetchall()

    def _explain_conflict(self, exc: sqlite3.IntegrityError, deployment: Deployment) -> Exception:
        """Turn a constraint failure on `deployments` into the port's error; anything else passes through."""
        message = str(exc)
        if "deployments.function" in message:  # the one-live-per-alias index
            holder = self.live_for(deployment.function, deployment.alias)
            which = f"{holder.id} ({holder.state.value})" if holder else "another deployment"
            return LiveDeploymentExists(
                f"{deployment.key} already has a live deployment: {which}; "
                f"{deployment.id} cannot be live at the same time"
            )
        if "deployments.id" in message:
            return ValueError(f"a deployment with id {deployment.id} already exists")
        return exc


# ---------------------------------------------------------------- connections
class _Connections(Protocol):
    def acquire(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def close(self) -> None: ...


class _WriterQueue:
    """One writer of the process at a time (reentrant); urgent writers go before the others.

    A writer that is not urgent yields to waiting urgent ones for at most YIELD_S of its wait, then takes its
    turn like them: a stream of Slack requests delays the work after the acks, never starves it.
    """

    YIELD_S = 0.5

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._urgent_waiting = 0

    def acquire(self, *, urgent: bool, timeout: float) -> bool:
        me = threading.get_ident()
        began = time.monotonic()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            if urgent:
                self._urgent_waiting += 1
            try:
                while True:
                    waited = time.monotonic() - began
                    yielding = not urgent and self._urgent_waiting > 0 and waited < self.YIELD_S
                    if self._owner is None and not yielding:
                        self._owner, self._depth = me, 1
                        return True
                    if waited >= timeout:
                        return False
                    limit = timeout - waited
                    if yielding:
                        limit = min(limit, self.YIELD_S - waited)
                    self._cond.wait(limit)
            finally:
                if urgent:
                    self._urgent_waiting -= 1

    def release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


class _SharedConnection:
    """One connection behind a lock (":memory:" exists only inside its connection)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.RLock()

    @contextmanager
    def acquire(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _PerThreadConnections:
    """A connection per thread, opened on first use. Connections of threads that have ended are closed
    when the next one is opened, so short-lived threads do not leak file handles."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._closed = False

    @contextmanager
    def acquire(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_for_current_thread()
        yield conn

    def _open_for_current_thread(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the store is closed")
            alive = [(thread, conn) for thread, conn in self._open if _is_alive(thread)]
            for thread, conn in self._open:
                if not _is_alive(thread):
                    conn.close()
            conn = self._connect()
            self._open = [*alive, (weakref.ref(threading.current_thread()), conn)]
        self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for _, conn in self._open:
                conn.close()
            self._open = []


def _is_alive(thread: weakref.ref[threading.Thread]) -> bool:
    target = thread()
    return target is not None and target.is_alive()


def _use_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """Switch the file to WAL. SQLite answers "database is locked" at once, without its busy handler, when
    several connections open the same fresh file together; retry within the busy timeout."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _connect(target: str, busy_timeout_ms: int) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread=False: a per-thread
    # connection is still closed by whichever thread closes the store.
    conn = sqlite3.connect(
        target, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across app crashes, fast commits
    return conn


# ---------------------------------------------------------------- rows and values
def _deployment_row(deployment: Deployment) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "function": deployment.function,
        "alias": deployment.alias,
        "state": deployment.state.value,
        "live": int(deployment.is_live),
        "created_at": _stamp(deployment.created_at),
        "updated_at": _stamp(deployment.updated_at),
        "revision": deployment.revision,
        "watch_until": _watch_column(deployment),
        "body": deployment.model_dump_json(),
    }


def _keep_thread(conn: sqlite3.Connection, deployment: Deployment) -> Deployment:
    """The deployment with the Slack thread already stored, when it was read before the thread was recorded."""
    if deployment.thread_ts:
        return deployment
    row = conn.execute("SELECT body FROM deployments WHERE id = ?", (deployment.id,)).fetchone()
    if row is None:
        return deployment
    stored = json.loads(row["body"])
    if not stored.get("thread_ts"):
        return deployment
    return deployment.model_copy(update={"channel": stored.get("channel"), "thread_ts": stored["thread_ts"]})


def _watch_column(deployment: Deployment) -> str | None:
    """The indexed watch end: set only while the deployment is promoted (the watch belongs to that state)."""
    if deployment.state is not State.PROMOTED or deployment.watch_until is None:
        return None
    return _stamp(deployment.watch_until)


# Every tick lists the live deployments and re-reads each one it judges, mostly unchanged since the last
# tick: the same JSON text (it carries the revision) always gives the same frozen model, so it is parsed once.
@lru_cache(maxsize=4096)
def _load_deployment(body: str) -> Deployment:
    return _in_utc(Deployment.model_validate_json(body))


def _load_outbox(row: sqlite3.Row) -> OutboxMessage:
    message = OutboxMessage.model_validate_json(row["body"])
    return _in_utc(message.model_copy(update={"id": int(row["id"])}))


def _load_audit(row: sqlite3.Row) -> AuditRecord:
    record = AuditRecord.model_validate(
        {
            "deployment_id": row["deployment_id"],
            "at": row["at"],
            "actor": row["actor"],
            "action": row["action"],
            "phase": row["phase"],
            "from_state": row["from_state"],
            "to_state": row["to_state"],
            "reason": row["reason"],
            "alias_before": _json_or_none(row["alias_before"]),
            "alias_after": _json_or_none(row["alias_after"]),
            "detail": json.loads(row["detail"]),
        }
    )
    return _in_utc(record)


def _stale(deployment: Deployment, stored_revision: int | None) -> StaleDeployment:
    if stored_revision is None:
        return StaleDeployment(f"deployment {deployment.id} is not in the store; create it before saving")
    return StaleDeployment(
        f"deployment {deployment.id} ({deployment.key}) changed since it was read: "
        f"stored revision {stored_revision}, ours {deployment.revision}"
    )


def _stamp(moment: datetime) -> str:
    """Fixed-width UTC text, so ORDER BY on the column is chronological."""
    return _require_aware(moment, "timestamp").astimezone(UTC).isoformat(timespec="microseconds")


def _require_aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} is a naive datetime ({moment.isoformat()}); the store keeps aware UTC only")
    return moment


def _in_utc(model: _Model) -> _Model:
    """The model with every datetime field as aware UTC (datetime.UTC); a naive one is a bug, refused."""
    changes: dict[str, datetime] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, datetime):
            _require_aware(value, f"{type(model).__name__}.{name}")
            if value.tzinfo is not UTC:
                changes[name] = value.astimezone(UTC)
    return model.model_copy(update=changes) if changes else model


# Every tick reads each live canary's figures back, mostly rows it read the tick before: the same JSON text
# always gives the same (frozen) model, so it is parsed once. Sized for ~680 canaries of 12 periods (a few
# MB at most); beyond that the oldest entries go and are parsed again.
@lru_cache(maxsize=8192)
def _figures_from_json(body: str) -> PeriodFigures:
    return _in_utc(PeriodFigures.model_validate_json(body))


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)
