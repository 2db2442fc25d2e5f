"""The StorePort contract, run against the file-backed SQLite store and the in-memory one (the fake)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.model import LIVE_STATES, TERMINAL_STATES, Deployment, State
from bot.ports import LiveDeploymentExists, StaleDeployment, StorePort, UnknownDeployment
from bot.store import MEMORY, SCHEMA_VERSION, SchemaTooNew, SqliteStore, open_store, sqlite_path
from bot.store.schema import MIGRATIONS, migrate, read_version
from tests.support.store import STORE_KINDS, T0, make_audit, make_deployment, make_figures, store_of_kind


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteStore]:
    with store_of_kind(request.param, tmp_path) as opened:
        yield opened  # type: ignore[misc]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "canary.db"


def test_sqlite_store_satisfies_the_store_port(store: SqliteStore) -> None:
    port: StorePort = store  # mypy checks the structure; this checks every method exists at runtime
    for name in ("create", "save", "get", "live_for", "list_live", "history", "append_audit", "audit_for",
                 "claim", "save_figures", "figures_for"):  # fmt: skip
        assert callable(getattr(port, name))


# ---------------------------------------------------------------- create / get
def test_created_deployment_reads_back_equal(store: SqliteStore) -> None:
    deployment = make_deployment(
        step_index=1,
        weight=0.25,
        step_started_at=T0 + timedelta(minutes=3),
        soak_ends_at=T0 + timedelta(minutes=13),
        approval_deadline=T0 + timedelta(hours=2),
        alias_revision="rev-abc",
        breach_streak=2,
        last_verdict="pass",
        changes={"CACHE_ENABLED": "true", "OLD_FLAG": None},
        channel="C0DEPLOYS",
        thread_ts="1700000000.000100",
    )

    created = store.create(deployment)

    assert created == deployment
    assert store.get(deployment.id) == deployment


def test_get_of_unknown_id_is_none(store: SqliteStore) -> None:
    assert store.get("no-such-deployment") is None


def test_create_with_an_existing_id_is_refused(store: SqliteStore) -> None:
    store.create(make_deployment("dep-1", state=State.ROLLED_BACK))

    with pytest.raises(ValueError, match="dep-1 already exists"):
        store.create(make_deployment("dep-1", alias="beta", state=State.ROLLED_BACK))


def test_datetimes_come_back_as_aware_utc(store: SqliteStore) -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 28, 15, 0, tzinfo=paris)
    store.create(make_deployment(created_at=local, soak_ends_at=local + timedelta(minutes=10)))

    loaded = store.get("dep-1")

    assert loaded is not None
    assert loaded.created_at == T0
    assert loaded.created_at.tzinfo is UTC
    assert loaded.soak_ends_at is not None and loaded.soak_ends_at.tzinfo is UTC


def test_naive_datetimes_are_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.create(make_deployment(created_at=datetime(2026, 11, 28, 14, 0)))
    with pytest.raises(ValueError, match="naive"):
        store.claim("k", datetime(2026, 11, 28, 14, 0))
    assert store.get("dep-1") is None


# ---------------------------------------------------------------- one live deployment per alias
def test_second_live_deployment_for_the_same_alias_is_refused(store: SqliteStore) -> None:
    store.create(make_deployment("dep-1"))

    with pytest.raises(LiveDeploymentExists) as refused:
        store.create(make_deployment("dep-2", state=State.PLANNED))

    assert "checkout:live" in str(refused.value)
    assert "dep-1" in str(refused.value)
    assert store.get("dep-2") is None
    live = store.live_for("checkout", "live")
    assert live is not None and live.id == "dep-1"


@pytest.mark.parametrize("state", sorted(LIVE_STATES))
def test_every_live_state_holds_the_alias(store: SqliteStore, state: State) -> None:
    store.create(make_deployment("dep-1", state=state))

    with pytest.raises(LiveDeploymentExists):
        store.create(make_deployment("dep-2"))


def test_live_deployments_on_other_aliases_and_functions_coexist(store: SqliteStore) -> None:
    store.create(make_deployment("dep-1", alias="live"))
    store.create(make_deployment("dep-2", alias="beta"))
    store.create(make_deployment("dep-3", function="search", alias="live"))

    assert {d.id for d in store.list_live()} == {"dep-1", "dep-2", "dep-3"}


def test_a_new_deployment_can_start_once_the_previous_one_rolled_back(store: SqliteStore) -> None:
    first = store.create(make_deployment("dep-1"))
    store.save(first.model_copy(update={"state": State.ROLLED_BACK, "reason": "error rate 2.1% > 0.1%"}))

    store.create(make_deployment("dep-2", created_at=T0 + timedelta(hours=1)))

    live = store.live_for("checkout", "live")
    assert live is not None and live.id == "dep-2"


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_saving_a_terminal_state_frees_the_alias(store: SqliteStore, terminal: State) -> None:
    first = store.create(make_deployment("dep-1"))

    store.save(first.model_copy(update={"state": terminal}))

    assert store.live_for("checkout", "live") is None
    assert store.list_live() == []
    store.create(make_deployment("dep-2"))


def test_terminal_deployments_never_block_each_other(store: SqliteStore) -> None:
    store.create(make_deployment("dep-1", state=State.PROMOTED))
    store.create(make_deployment("dep-2", state=State.CANCELLED))
    store.create(make_deployment("dep-3", state=State.ROLLED_BACK))

    assert store.live_for("checkout", "live") is None


def test_saving_an_ended_deployment_back_to_live_while_another_holds_the_alias_is_refused(
    store: SqliteStore,
) -> None:
    ended = store.create(make_deployment("dep-1", state=State.ROLLED_BACK))
    store.create(make_deployment("dep-2"))

    with pytest.raises(LiveDeploymentExists, match="dep-2"):
        store.save(ended.model_copy(update={"state": State.CANARY}))

    still = store.get("dep-1")
    assert still is not None and still.state is State.ROLLED_BACK and still.revision == 0


# ---------------------------------------------------------------- save (optimistic concurrency)
def test_save_bumps_the_revision_and_persists(store: SqliteStore) -> None:
    created = store.create(make_deployment())
    later = T0 + timedelta(minutes=10)

    saved = store.save(created.model_copy(update={"step_index": 1, "weight": 0.25, "updated_at": later}))

    assert saved.revision == created.revision + 1
    assert saved.weight == 0.25
    assert store.get(created.id) == saved
    assert store.save(saved).revision == saved.revision + 1


def test_save_with_a_stale_revision_is_refused(store: SqliteStore) -> None:
    read_by_both = store.create(make_deployment())
    store.save(read_by_both.model_copy(update={"state": State.HELD, "held_from": State.CANARY}))

    with pytest.raises(StaleDeployment, match="stored revision 1, ours 0"):
        store.save(read_by_both.model_copy(update={"state": State.ROLLING_BACK}))

    stored = store.get(read_by_both.id)
    assert stored is not None and stored.state is State.HELD and stored.revision == 1


def test_save_of_a_deployment_never_created_is_refused(store: SqliteStore) -> None:
    with pytest.raises(StaleDeployment, match="not in the store"):
        store.save(make_deployment("ghost"))
    assert store.get("ghost") is None


# ---------------------------------------------------------------- queries
def test_list_live_holds_only_live_deployments_oldest_first(store: SqliteStore) -> None:
    store.create(make_deployment("newer", alias="beta", created_at=T0 + timedelta(hours=1)))
    store.create(make_deployment("older", alias="live", created_at=T0))
    store.create(make_deployment("done", alias="gamma", state=State.PROMOTED))

    assert [d.id for d in store.list_live()] == ["older", "newer"]


# ---------------------------------------------------------------- watched promotions
DAY = timedelta(hours=24)


def watched(deployment_id: str, alias: str, watch_until: datetime | None, **fields: Any) -> Deployment:
    fields.setdefault("state", State.PROMOTED)
    return make_deployment(deployment_id, alias=alias, ended_at=T0, watch_until=watch_until, **fields)


def test_list_watching_holds_promoted_deployments_whose_watch_ends_after_now(store: SqliteStore) -> None:
    store.create(watched("day", "live", T0 + DAY))
    store.create(watched("hour", "beta", T0 + timedelta(hours=1), created_at=T0 + timedelta(minutes=1)))
    store.create(watched("unwatched", "gamma", None))
    store.create(watched("rolled-back", "delta", T0 + DAY, state=State.ROLLED_BACK))
    store.create(watched("soaking", "epsilon", T0 + DAY, state=State.CANARY))

    assert [d.id for d in store.list_watching(T0)] == ["day", "hour"]
    assert [d.id for d in store.list_watching(T0 + timedelta(hours=1))] == ["day"]  # ending now: over
    assert store.list_watching(T0 + DAY) == []


def test_list_watching_compares_instants_whatever_the_time_zone(store: SqliteStore) -> None:
    store.create(watched("day", "live", T0 + DAY))
    paris = timezone(timedelta(hours=1))

    assert [d.id for d in store.list_watching((T0 + DAY - timedelta(minutes=1)).astimezone(paris))] == ["day"]
    assert store.list_watching((T0 + DAY).astimezone(paris)) == []
    with pytest.raises(ValueError, match="naive"):
        store.list_watching(T0.replace(tzinfo=None))


def test_a_canary_saved_as_promoted_with_a_watch_becomes_watched(store: SqliteStore) -> None:
    soaking = store.create(make_deployment())
    assert store.list_watching(T0) == []

    promoted = store.save(
        soaking.model_copy(update={"state": State.PROMOTED, "ended_at": T0, "watch_until": T0 + DAY})
    )

    assert store.list_watching(T0) == [promoted]


def test_a_version_1_database_migrates_keeping_its_deployments_none_of_them_watched(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, where=str(db_path), migrations=MIGRATIONS[:1])
    old = make_deployment(state=State.PROMOTED, ended_at=T0)
    conn.execute(
        "INSERT INTO deployments (id, function, alias, state, live, created_at, updated_at, revision, body)"
        " VALUES (?, ?, ?, ?, 0, ?, ?, 0, ?)",
        (
            old.id,
            old.function,
            old.alias,
            old.state.value,
            T0.isoformat(),
            T0.isoformat(),
            old.model_dump_json(),
        ),
    )
    conn.close()

    with SqliteStore(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get(old.id) == old
        assert store.list_watching(T0) == []
        store.save(old.model_copy(update={"watch_until": T0 + DAY}))
        assert [d.id for d in store.list_watching(T0)] == [old.id]


def test_history_is_newest_first_and_filtered_by_function_and_alias(store: SqliteStore) -> None:
    for hour, (dep_id, alias) in enumerate([("a", "live"), ("b", "beta"), ("c", "live"), ("d", "live")]):
        store.create(
            make_deployment(dep_id, alias=alias, state=State.PROMOTED, created_at=T0 + timedelta(hours=hour))
        )
    store.create(
        make_deployment(
            "other-fn", function="search", state=State.PROMOTED, created_at=T0 + timedelta(hours=9)
        )
    )

    assert [d.id for d in store.history("checkout")] == ["d", "c", "b", "a"]
    assert [d.id for d in store.history("checkout", "live")] == ["d", "c", "a"]
    assert [d.id for d in store.history("checkout", "live", limit=2)] == ["d", "c"]
    assert store.history("nothing-here") == []


def test_history_limit_must_be_positive(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        store.history("checkout", limit=0)


# ---------------------------------------------------------------- audit
def test_audit_reads_back_in_the_order_appended(store: SqliteStore) -> None:
    before = {"version": "7", "weights": {}, "revision_id": "r1"}
    after = {"version": "7", "weights": {"8": 0.05}, "revision_id": "r2"}
    records = [
        make_audit(action="start", phase="intent", at=T0 + timedelta(seconds=1), alias_before=before),
        make_audit(action="start", phase="done", at=T0, from_state=State.PLANNED, to_state=State.CANARY,
                   alias_before=before, alias_after=after, detail={"weight": 0.05, "steps": [0.05, 0.25]}),
        make_audit(action="hold", reason="alarm checkout-errors in ALARM", at=T0 + timedelta(minutes=4)),
    ]  # fmt: skip
    store.append_audit(make_audit("dep-other", action="start"))
    for record in records:
        store.append_audit(record)

    assert store.audit_for("dep-1") == records
    assert [r.action for r in store.audit_for("dep-other")] == ["start"]
    assert store.audit_for("nobody") == []


def test_audit_rows_cannot_be_updated_or_deleted_even_with_raw_sql(db_path: Path) -> None:
    with SqliteStore(db_path) as store:
        store.append_audit(make_audit(action="promote"))
    raw = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE audit SET actor = 'someone-else'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM audit")
        raw.rollback()
    finally:
        raw.close()
    with SqliteStore(db_path) as reopened:
        assert [(r.actor, r.action) for r in reopened.audit_for("dep-1")] == [("U024BE7LH", "promote")]


# ---------------------------------------------------------------- idempotency
def test_a_key_is_claimed_once(store: SqliteStore) -> None:
    assert store.claim("slack:action:Ev123", T0) is True
    assert store.claim("slack:action:Ev123", T0 + timedelta(seconds=3)) is False
    assert store.claim("slack:action:Ev124", T0) is True


# ---------------------------------------------------------------- figures
def test_figures_are_upserted_by_period_and_read_oldest_first(store: SqliteStore) -> None:
    store.create(make_deployment("dep-1"))
    store.create(make_deployment("dep-2", alias="beta"))
    p0, p1, p2 = (T0 + timedelta(minutes=5 * i) for i in range(3))
    store.save_figures("dep-1", [make_figures(p1), make_figures(p0)])
    store.save_figures("dep-2", [make_figures(p0, canary_errors=99)])

    revised = make_figures(p1, canary_errors=4)
    store.save_figures("dep-1", [revised, make_figures(p2)])

    assert store.figures_for("dep-1") == [make_figures(p0), revised, make_figures(p2)]
    assert [f.canary.errors for f in store.figures_for("dep-2")] == [99]
    assert store.figures_for("nobody") == []


def test_figures_for_an_unknown_deployment_are_refused(store: SqliteStore) -> None:
    with pytest.raises(UnknownDeployment, match="ghost"):
        store.save_figures("ghost", [make_figures(T0)])
    assert store.figures_for("ghost") == []


# ---------------------------------------------------------------- schema and durability
def test_schema_version_is_recorded(store: SqliteStore) -> None:
    assert store.schema_version >= 1


def test_file_store_runs_in_wal_mode_at_the_current_schema_version(db_path: Path) -> None:
    SqliteStore(db_path).close()

    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert read_version(raw) == SCHEMA_VERSION
    finally:
        raw.close()


def test_reopening_a_file_store_keeps_everything(db_path: Path) -> None:
    with SqliteStore(db_path) as first:
        deployment = first.save(first.create(make_deployment()))
        first.append_audit(make_audit(action="start"))
        first.claim("once", T0)
        first.save_figures(deployment.id, [make_figures(T0)])

    with SqliteStore(db_path) as reopened:
        assert reopened.get(deployment.id) == deployment
        assert reopened.live_for("checkout", "live") == deployment
        assert [r.action for r in reopened.audit_for(deployment.id)] == ["start"]
        assert reopened.claim("once", T0) is False
        assert reopened.figures_for(deployment.id) == [make_figures(T0)]


def test_a_database_from_a_newer_bot_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()

    with pytest.raises(
        SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 1}.*only up to version {SCHEMA_VERSION}"
    ):
        SqliteStore(db_path)


def test_a_failing_migration_leaves_the_database_untouched() -> None:
    conn = sqlite3.connect(MEMORY, isolation_level=None)
    broken = [("CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL")]
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, where=MEMORY, migrations=broken)
        assert read_version(conn) == 0
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    finally:
        conn.close()


def test_migrations_apply_only_what_is_missing() -> None:
    conn = sqlite3.connect(MEMORY, isolation_level=None)
    v1 = [("CREATE TABLE first (x INTEGER)",)]
    try:
        assert migrate(conn, where=MEMORY, migrations=v1) == 1
        assert migrate(conn, where=MEMORY, migrations=[*v1, ("CREATE TABLE second (y INTEGER)",)]) == 2
        assert read_version(conn) == 2
    finally:
        conn.close()


# ---------------------------------------------------------------- open_store URLs
def test_open_store_accepts_a_relative_path_and_creates_its_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with open_store("sqlite:///var/data/canary.db") as store:
        store.create(make_deployment())

    assert (tmp_path / "var" / "data" / "canary.db").is_file()


def test_open_store_accepts_an_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "canary.db"

    with open_store(f"sqlite:///{path}") as store:
        assert store.location == str(path)
    assert path.is_file()


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:"])
def test_open_store_accepts_memory_urls(url: str) -> None:
    with open_store(url) as store:
        assert store.location == MEMORY
        store.create(make_deployment())
        assert store.get("dep-1") is not None


@pytest.mark.parametrize(
    "url",
    ["", "canary.db", "postgres://db/canary", "sqlite://", "sqlite:///", "sqlite://host/canary.db",
     "sqlite:///data/", "sqlite:///canary.db?mode=ro", "dynamodb://table"],
)  # fmt: skip
def test_open_store_rejects_other_urls_naming_the_setting(url: str) -> None:
    with pytest.raises(ValueError, match=r"CANARY_STORE_URL.*sqlite:///relative/path\.db.*sqlite://:memory:"):
        sqlite_path(url)


# ---------------------------------------------------------------- deploy locks
def _lock(
    version: str | None = None, *, alias: str = "live", at: datetime = T0, reason: str = "freeze"
) -> Any:
    from bot.model import DeployLock

    return DeployLock(
        function="lego-api",
        alias=alias,
        version=version,
        locked_by="slack:U1 (maria)",
        reason=reason,
        since=at,
    )


def test_locks_read_back_oldest_first_per_alias(store: SqliteStore) -> None:
    store.put_lock(_lock("3", at=T0 + timedelta(minutes=5)))
    store.put_lock(_lock(None, at=T0))
    store.put_lock(_lock(None, alias="beta"))

    assert [lock.version for lock in store.locks_for("lego-api", "live")] == [None, "3"]
    assert store.locks_for("lego-api", "live")[0] == _lock(None)
    assert [lock.alias for lock in store.list_locks()] == ["beta", "live", "live"]


def test_putting_a_lock_with_the_same_key_replaces_it(store: SqliteStore) -> None:
    store.put_lock(_lock(None, reason="first"))
    store.put_lock(_lock(None, reason="second", at=T0 + timedelta(hours=1)))

    [lock] = store.locks_for("lego-api", "live")
    assert lock.reason == "second"


def test_removing_locks_clears_only_that_alias_and_says_what_went(store: SqliteStore) -> None:
    store.put_lock(_lock(None))
    store.put_lock(_lock("3"))
    store.put_lock(_lock(None, alias="beta"))

    removed = store.remove_locks("lego-api", "live")

    assert sorted(lock.version or "*" for lock in removed) == ["*", "3"]
    assert store.locks_for("lego-api", "live") == []
    assert len(store.locks_for("lego-api", "beta")) == 1
    assert store.remove_locks("lego-api", "live") == []
