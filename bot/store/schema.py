"""The SQLite schema as an ordered list of migrations, and the code that brings a database up to date.

The version lives in `PRAGMA user_version` (stored in the database header, written in the same transaction
as the DDL), so a crash mid-migration leaves the database at the old version with none of the new tables.
Append new migrations to MIGRATIONS; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

# Each migration is a sequence of single statements (not a script): sqlite3.executescript would COMMIT
# first and break the all-or-nothing upgrade.
Migration = Sequence[str]

_V1_INITIAL: Migration = (
    # Columns beside `body` exist to be queried and indexed; `body` (Deployment JSON) is the source of truth.
    """
    CREATE TABLE deployments (
        id          TEXT PRIMARY KEY,
        function    TEXT NOT NULL,
        alias       TEXT NOT NULL,
        state       TEXT NOT NULL,
        live        INTEGER NOT NULL CHECK (live IN (0, 1)),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        revision    INTEGER NOT NULL CHECK (revision >= 0),
        body        TEXT NOT NULL
    )
    """,
    # At most one live deployment per function:alias, enforced by the database rather than check-then-write.
    """
    CREATE UNIQUE INDEX deployments_one_live_per_alias
        ON deployments (function, alias) WHERE live = 1
    """,
    "CREATE INDEX deployments_by_alias ON deployments (function, alias, created_at)",
    # No foreign key to deployments: an audit line must never be lost because of what it refers to.
    """
    CREATE TABLE audit (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment_id TEXT NOT NULL,
        at            TEXT NOT NULL,
        actor         TEXT NOT NULL,
        action        TEXT NOT NULL,
        phase         TEXT NOT NULL,
        from_state    TEXT,
        to_state      TEXT,
        reason        TEXT,
        alias_before  TEXT,
        alias_after   TEXT,
        detail        TEXT NOT NULL
    )
    """,
    "CREATE INDEX audit_by_deployment ON audit (deployment_id, id)",
    """
    CREATE TRIGGER audit_is_append_only_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only: rows cannot be updated'); END
    """,
    """
    CREATE TRIGGER audit_is_append_only_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only: rows cannot be deleted'); END
    """,
    """
    CREATE TABLE idempotency_keys (
        key         TEXT PRIMARY KEY,
        claimed_at  TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE figures (
        deployment_id TEXT NOT NULL REFERENCES deployments (id),
        period_start  TEXT NOT NULL,
        body          TEXT NOT NULL,
        PRIMARY KEY (deployment_id, period_start)
    )
    """,
)

_V2_WATCH_AFTER_PROMOTE: Migration = (
    # When a promoted deployment's watch ends (NULL: not watched), so the soak loop finds the watched ones
    # through an index instead of reading every body. Rows written before this version were never watched.
    "ALTER TABLE deployments ADD COLUMN watch_until TEXT",
    "CREATE INDEX deployments_watching ON deployments (watch_until) WHERE watch_until IS NOT NULL",
)

_V3_DURABLE_ACTIONS: Migration = (
    # Traffic intents: written before any AWS call, driven to done by the reconciler. `body` (Intent JSON) is
    # the source of truth; the columns are for the queries. At most one open intent per deployment.
    """
    CREATE TABLE intents (
        id              TEXT PRIMARY KEY,
        deployment_id   TEXT NOT NULL,
        kind            TEXT NOT NULL,
        status          TEXT NOT NULL,
        priority        INTEGER NOT NULL,
        created_at      TEXT NOT NULL,
        body            TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX intents_one_open_per_deployment ON intents (deployment_id) WHERE status = 'open'",
    "CREATE INDEX intents_by_deployment ON intents (deployment_id, created_at)",
    "CREATE INDEX intents_unfinished ON intents (status, priority, created_at)",
    # Leases: who may act on a name (a deployment) until when. `token` grows on every change of holder, so a
    # holder that was presumed dead cannot complete work after another has taken over (fencing).
    """
    CREATE TABLE leases (
        name        TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        token       INTEGER NOT NULL
    )
    """,
    # The outbox: every Slack message, delivered in order per lane, retried across restarts, sent once.
    """
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        key             TEXT NOT NULL UNIQUE,
        lane            TEXT NOT NULL,
        status          TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        body            TEXT NOT NULL
    )
    """,
    "CREATE INDEX outbox_pending ON outbox (status, lane, id)",
    # The last membership seen of each Slack user group, for approval checks while Slack cannot be asked.
    """
    CREATE TABLE group_members (
        group_id    TEXT PRIMARY KEY,
        members     TEXT NOT NULL,
        seen_at     TEXT NOT NULL
    )
    """,
)

_V4_DEPLOY_LOCKS: Migration = (
    # Deploy locks: a person's lock on function:alias (version '*'), or a rollback's lock on one version.
    """
    CREATE TABLE deploy_locks (
        function    TEXT NOT NULL,
        alias       TEXT NOT NULL,
        version     TEXT NOT NULL,
        since       TEXT NOT NULL,
        body        TEXT NOT NULL,
        PRIMARY KEY (function, alias, version)
    )
    """,
)

# MIGRATIONS[i] takes a database from version i to version i + 1.
MIGRATIONS: tuple[Migration, ...] = (
    _V1_INITIAL,
    _V2_WATCH_AFTER_PROMOTE,
    _V3_DURABLE_ACTIONS,
    _V4_DEPLOY_LOCKS,
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer canary-bot: refusing to guess at its layout."""


def read_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, *, where: str, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing migrations in one IMMEDIATE transaction; return the resulting version.

    `conn` must be in autocommit mode (isolation_level=None). IMMEDIATE takes the write lock before reading
    the version, so two processes opening the same fresh file cannot both run migration 1.
    """
    target = len(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = read_version(conn)
        if current > target:
            raise SchemaTooNew(
                f"the store at {where} has schema version {current}, but this canary-bot knows only up to "
                f"version {target}; upgrade canary-bot, or point CANARY_STORE_URL at another database"
            )
        for migration in migrations[current:]:
            for statement in migration:
                conn.execute(statement)
        if current != target:
            # PRAGMA takes no parameters; target is an int we computed.
            conn.execute(f"PRAGMA user_version = {target:d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return target
