"""StorePort on DynamoDB: one table shared by several replicas (and the serverless alarm responder).

Same semantics and errors as bot.store.sqlite; the invariants are conditional writes, never a read followed
by a write:

- one live deployment per function:alias: a guard item (`LIVE`, `<function>#<alias>`) written in the same
  TransactWriteItems as the deployment, with `attribute_not_exists` (or "already ours");
- saves are compare-and-set on `revision` (ConditionExpression `revision = :expected`);
- one open intent per deployment: a guard item (`OPEN`, `<deployment id>`) naming the open intent;
- `complete_intent` is one TransactWriteItems: deployment (CAS) + audit line + intent (+ guard release);
- leases: conditional UpdateItem on owner/expiry; the fencing token is incremented (ADD) on every takeover;
- idempotency keys and outbox keys: PutItem with `attribute_not_exists(pk)`;
- the audit log is append-only: PutItem with `attribute_not_exists(pk)`; this module has no update or
  delete path for audit items.

Key schema (table: `pk` S hash, `sk` S range; TTL attribute `expires_at`, epoch seconds):

| item                 | pk                 | sk                      | notes                                         |
| -------------------- | ------------------ | ----------------------- | --------------------------------------------- |
| deployment           | `DEP#<id>`         | `DEP`                   | body (JSON), revision; GSIs below             |
| audit line           | `DEP#<id>`         | `AUDIT#<seq:012d>`      | append order = `seq` from the counter below   |
| audit counter        | `DEP#<id>`         | `SEQ#AUDIT`             | `n`, ADD 1 per line                           |
| figures of a period  | `DEP#<id>`         | `FIG#<period start>`    | upserted                                      |
| intent               | `DEP#<deployment>` | `INTENT#<id>`           | body, status                                  |
| intent pointer       | `INTENT#<id>`      | `INTENT`                | deployment_id (get_intent by id)              |
| live guard           | `LIVE`             | `<function>#<alias>`    | dep_id; one partition: list_live is one Query |
| open-intent guard    | `OPEN`             | `<deployment id>`       | intent_id; open_intents is one Query          |
| recorded intent      | `RECORDED`         | `<intent id>`           | deployment_id, while its follow-up is undone  |
| lease                | `LEASE#<name>`     | `LEASE`                 | owner, held_until (ISO), token; no TTL        |
| idempotency key      | `CLAIM#<key>`      | `CLAIM`                 | TTL: CLAIM_TTL after the claim                |
| outbox row           | `OUTBOX#<key>`     | `OUTBOX`                | id, lane, status; sent/dead: TTL OUTBOX_TTL   |
| outbox id counter    | `SEQ`              | `OUTBOX`                | `n`, ADD 1 per enqueue (the order in a lane)  |
| user-group members   | `GROUP#<id>`       | `GROUP`                 | members, seen_at                              |
| deploy lock          | `LOCK`             | `<fn>#<alias>#<v or *>` | body (DeployLock JSON); one partition         |
| schema version       | `META`             | `SCHEMA`                | version                                       |

Global secondary indexes (all sparse, eventually consistent; nothing that guards a write reads them):

| index         | hash key           | range key                 | holds                              | serves        |
| ------------- | ------------------ | ------------------------- | ---------------------------------- | ------------- |
| `by_function` | `gsi1pk` FN#<fn>   | `gsi1sk` created#n        | every deployment                   | history       |
| `watching`    | `gsi2pk` WATCH     | `gsi2sk` watch_until#id   | promoted deployments with a watch  | list_watching |
| `outbox`      | `opk` PENDING      | `osk` id, zero-padded     | pending outbox rows only           | outbox_heads  |

`outbox_heads` reads the pending index (keys, lane and next attempt only: a few dozen bytes a row, thousands
per page), takes the first row of each lane, and reads the due heads back from the table with a consistent
BatchGetItem, dropping any the index still shows pending after they were sent: two calls when something is
due, whatever the size of the outbox's history.

Reads that decide something (get, live_for, list_live, intents, leases, claims, outbox rows) are strongly
consistent. history, list_watching and outbox_pending read an index and may lag a write by a moment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bot.intents import Intent
from bot.model import AuditRecord, DeployLock, Deployment, PeriodFigures, State
from bot.outbox_model import OutboxMessage
from bot.ports import AwsFailure, IntentInProgress, LiveDeploymentExists, StaleDeployment, UnknownDeployment
from bot.store.schema import SchemaTooNew
from bot.store.sqlite import _in_utc, _require_aware, _stamp

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SCHEMA_VERSION = 1
TTL_ATTRIBUTE = "expires_at"
CLAIM_TTL = timedelta(days=30)  # longer than SQS (14 days) keeps a message, and far longer than a click
OUTBOX_TTL = timedelta(days=7)  # sent and dead rows: kept a week for the record, then removed
INDEXES: dict[str, tuple[str, str]] = {
    "by_function": ("gsi1pk", "gsi1sk"),
    "watching": ("gsi2pk", "gsi2sk"),
    "outbox": ("opk", "osk"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StoreMissing(ValueError):
    """The table CANARY_STORE_URL names does not exist (or is not ready)."""


# ---------------------------------------------------------------- table
def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments: on-demand billing, the key schema and indexes above."""
    attributes = {"pk", "sk"} | {a for pair in INDEXES.values() for a in pair}
    indexes = []
    for index, (hash_key, range_key) in INDEXES.items():
        projection: dict[str, Any] = {"ProjectionType": "ALL"}
        if index == "outbox":
            projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["lane", "next_at"]}
        indexes.append(
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": projection,
            }
        )
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": indexes,
    }


def create_table(client: DynamoDBClient, name: str, *, wait_seconds: float = 120.0) -> bool:
    """Create the table (on-demand, TTL on `expires_at`) when missing; True when it was created.

    Idempotent: on an existing table it only makes sure TTL is on and the schema version is recorded.
    """
    db: Any = client
    created = False
    try:
        db.create_table(**table_definition(name))
        created = True
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
    deadline = time.monotonic() + wait_seconds
    while db.describe_table(TableName=name)["Table"].get("TableStatus") != "ACTIVE":
        if time.monotonic() > deadline:
            raise StoreMissing(f"DynamoDB table {name} did not become ACTIVE within {wait_seconds:.0f} s")
        time.sleep(1)
    ttl = db.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        db.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
    _check_and_record_schema(db, name)
    return created


def _check_and_record_schema(db: Any, name: str) -> int:
    item = db.get_item(TableName=name, Key=_key("META", "SCHEMA"), ConsistentRead=True).get("Item")
    if item is None:
        try:
            db.put_item(
                TableName=name,
                Item={**_key("META", "SCHEMA"), "version": _n(SCHEMA_VERSION)},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        return SCHEMA_VERSION
    version = int(item["version"]["N"])
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the DynamoDB table {name} has schema version {version}, but this canary-bot knows only up to "
            f"version {SCHEMA_VERSION}; upgrade canary-bot, or point CANARY_STORE_URL at another table"
        )
    return version


# ---------------------------------------------------------------- transactions
@dataclass
class _Op:
    """One item of a TransactWriteItems. A `soft` op may be dropped (and the rest retried) when only its
    condition failed: it releases a guard that turned out not to be ours."""

    tag: str
    item: dict[str, Any]
    soft: bool = False


@dataclass
class _Cancelled(Exception):
    failed: list[str] = field(default_factory=list)


class DynamoStore:
    """Deployments, audit log, intents, leases, outbox, idempotency keys, figures and group memberships in one
    DynamoDB table. Thread-safe (botocore clients are)."""

    def __init__(self, client: DynamoDBClient, table: str, *, check: bool = True) -> None:
        self._db: Any = client
        self._table = table
        self._schema_version = SCHEMA_VERSION
        if check:
            try:
                status = self._db.describe_table(TableName=table)["Table"].get("TableStatus")
            except ClientError as exc:
                if _code(exc) == "ResourceNotFoundException":
                    raise StoreMissing(
                        f"DynamoDB table {table} does not exist: create it with `canary-bot init-store` "
                        "(or deploy deploy/template.yaml), or fix CANARY_STORE_URL"
                    ) from exc
                raise
            if status not in ("ACTIVE", "UPDATING"):
                raise StoreMissing(f"DynamoDB table {table} is {status}, not ACTIVE yet")
            self._schema_version = _check_and_record_schema(self._db, table)

    # ------------------------------------------------------------ lifecycle
    @property
    def location(self) -> str:
        return f"dynamodb://{self._table}"

    @property
    def table(self) -> str:
        return self._table

    @property
    def schema_version(self) -> int:
        return self._schema_version

    def close(self) -> None:
        closer = getattr(self._db, "close", None)
        if callable(closer):
            closer()

    def __enter__(self) -> DynamoStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ deployments
    def create(self, deployment: Deployment) -> Deployment:
        stored = _in_utc(deployment)
        ops = [
            _Op("deployment", self._put(_deployment_item(stored, _sequence()), "attribute_not_exists(pk)")),
        ]
        if stored.is_live:
            ops.append(_Op("live", self._put(_live_guard(stored), "attribute_not_exists(pk)")))
        try:
            self._transact(ops)
        except _Cancelled as exc:
            if "deployment" in exc.failed:
                raise ValueError(f"a deployment with id {stored.id} already exists") from None
            raise self._live_conflict(stored) from None
        return stored

    def save(self, deployment: Deployment) -> Deployment:
        stored = self._keep_thread(_in_utc(deployment)).model_copy(
            update={"revision": deployment.revision + 1}
        )
        self._save_with([], deployment, stored)
        return stored

    def record_thread(self, deployment_id: str, channel: str, thread_ts: str) -> None:
        """Remember the deployment's Slack thread, once, without bumping its revision (attributes beside the
        body, merged when read); later saves keep it."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_dep_key(deployment_id),
                UpdateExpression="SET thread_ch = :c, thread_ts = :t",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(thread_ts)",
                ExpressionAttributeValues={":c": _s(channel), ":t": _s(thread_ts)},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    def _keep_thread(self, d: Deployment) -> Deployment:
        """A deployment saved without its thread keeps the one recorded (write-once)."""
        if d.thread_ts:
            return d
        item = self._get_item(_dep_key(d.id), projection="thread_ch, thread_ts")
        if not item or "thread_ts" not in item:
            return d
        return d.model_copy(update={"channel": item["thread_ch"]["S"], "thread_ts": item["thread_ts"]["S"]})

    def _save_with(self, extra: list[_Op], read: Deployment, stored: Deployment) -> None:
        """Compare-and-set `stored` over revision `read.revision`, its live guard and `extra`, at once."""
        ops = [_Op("deployment", self._cas_update(read, stored)), self._live_op(stored), *extra]
        try:
            self._transact(ops)
        except _Cancelled as exc:
            if "deployment" in exc.failed:
                raise self._stale(read) from None
            if "live" in exc.failed:
                raise self._live_conflict(stored) from None
            raise StaleDeployment(f"deployment {read.id} could not be recorded: {exc.failed}") from None

    def _cas_update(self, read: Deployment, stored: Deployment) -> dict[str, Any]:
        """An Update of every attribute but the insertion order, if the stored revision is the one read."""
        item = _deployment_item(stored, 0)
        fields = {k: v for k, v in item.items() if k not in ("pk", "sk", "ins", "gsi1sk")}
        names = {f"#a{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(fields)))
        if "gsi2pk" not in fields:
            expression += " REMOVE gsi2pk, gsi2sk"
        return {
            "Update": {
                "TableName": self._table,
                "Key": _dep_key(stored.id),
                "UpdateExpression": expression,
                "ConditionExpression": "#rev = :expected",
                "ExpressionAttributeNames": {**names, "#rev": "revision"},
                "ExpressionAttributeValues": {**values, ":expected": _n(read.revision)},
            }
        }

    def _live_op(self, d: Deployment) -> _Op:
        key = _key("LIVE", _alias_key(d))
        if d.is_live:
            return _Op(
                "live",
                self._put(
                    _live_guard(d), "attribute_not_exists(pk) OR dep_id = :id", values={":id": _s(d.id)}
                ),
            )
        return _Op(
            "live",
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": key,
                    "ConditionExpression": "attribute_not_exists(pk) OR dep_id = :id",
                    "ExpressionAttributeValues": {":id": _s(d.id)},
                }
            },
            soft=True,  # the alias is held by another deployment: not ours to free
        )

    def get(self, deployment_id: str) -> Deployment | None:
        item = self._get_item(_dep_key(deployment_id))
        return _load_deployment(item) if item else None

    def live_for(self, function: str, alias: str) -> Deployment | None:
        guard = self._get_item(_key("LIVE", f"{function}#{alias}"))
        if guard is None:
            return None
        d = self.get(guard["dep_id"]["S"])
        return d if d is not None and d.is_live else None

    def list_live(self) -> list[Deployment]:
        """Oldest first."""
        ids = [item["dep_id"]["S"] for item in self._query_all(pk="LIVE")]
        items = self._batch_get([_dep_key(i) for i in ids])
        found = [(item, _load_deployment(item)) for item in items]
        found.sort(key=lambda pair: (pair[1].created_at, int(pair[0]["ins"]["N"])))
        return [d for _, d in found if d.is_live]

    def list_watching(self, now: datetime) -> list[Deployment]:
        """Promoted deployments whose watch ends after `now`, oldest first."""
        bound = (
            _stamp(_require_aware(now, "list_watching(now)")) + "$"
        )  # '$' sorts after '#': ends at now = over
        items = self._query_all(
            index="watching",
            condition="gsi2pk = :pk AND gsi2sk > :bound",
            values={":pk": _s("WATCH"), ":bound": _s(bound)},
        )
        items.sort(key=lambda item: (item["created_at"]["S"], int(item["ins"]["N"])))
        return [_load_deployment(item) for item in items]

    def history(self, function: str, alias: str | None = None, limit: int = 20) -> list[Deployment]:
        """Newest first by created_at (ties: latest inserted first)."""
        if limit < 1:
            raise ValueError(f"history limit must be at least 1, not {limit}")
        values: dict[str, Any] = {":pk": _s(f"FN#{function}")}
        kwargs: dict[str, Any] = {}
        if alias is not None:
            kwargs = {"FilterExpression": "alias = :alias"}
            values[":alias"] = _s(alias)
        found: list[Deployment] = []
        for item in self._query_iter(
            index="by_function",
            condition="gsi1pk = :pk",
            values=values,
            forward=False,
            page=max(limit, 25),
            **kwargs,
        ):
            found.append(_load_deployment(item))
            if len(found) >= limit:
                break
        return found

    # ------------------------------------------------------------ audit
    def append_audit(self, record: AuditRecord) -> None:
        record = _in_utc(record)
        self._db.put_item(**self._put(self._audit_item(record), "attribute_not_exists(pk)")["Put"])

    def _audit_item(self, record: AuditRecord) -> dict[str, Any]:
        seq = self._next(_dep_pk(record.deployment_id), "SEQ#AUDIT")
        return {
            **_key(_dep_pk(record.deployment_id), f"AUDIT#{seq:012d}"),
            "at": _s(_stamp(record.at)),
            "body": _s(record.model_dump_json()),
        }

    def audit_for(self, deployment_id: str) -> list[AuditRecord]:
        """Oldest first (in the order appended)."""
        items = self._query_all(pk=_dep_pk(deployment_id), prefix="AUDIT#")
        return [_in_utc(AuditRecord.model_validate_json(item["body"]["S"])) for item in items]

    # ------------------------------------------------------------ idempotency
    def claim(self, key: str, now: datetime) -> bool:
        now = _require_aware(now, "claim(now)")
        try:
            self._db.put_item(
                **self._put(
                    {
                        **_key(f"CLAIM#{key}", "CLAIM"),
                        "claimed_at": _s(_stamp(now)),
                        TTL_ATTRIBUTE: _n(_epoch(now + CLAIM_TTL)),
                    },
                    "attribute_not_exists(pk)",
                )["Put"]
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def is_claimed(self, key: str) -> bool:
        return self._get_item(_key(f"CLAIM#{key}", "CLAIM"), projection="pk") is not None

    def release(self, key: str) -> None:
        self._db.delete_item(TableName=self._table, Key=_key(f"CLAIM#{key}", "CLAIM"))

    # ------------------------------------------------------------ figures
    def save_figures(self, deployment_id: str, figures: Sequence[PeriodFigures]) -> None:
        """Upsert by period start, only for a deployment in the store (UnknownDeployment otherwise).

        Deployments are never deleted, so checking that it exists and then writing is as safe as one
        transaction, and costs half: one GetItem and a BatchWriteItem per 25 periods.
        """
        if self._get_item(_dep_key(deployment_id), projection="pk") is None:
            raise UnknownDeployment(f"no deployment {deployment_id} in the store: its figures are refused")
        puts = [
            {
                "PutRequest": {
                    "Item": {
                        **_key(_dep_pk(deployment_id), f"FIG#{_stamp(f.start)}"),
                        "body": _s(_in_utc(f).model_dump_json()),
                    }
                }
            }
            for f in figures
        ]
        for start in range(0, len(puts), 25):
            request: dict[str, Any] = {self._table: puts[start : start + 25]}
            for attempt in range(10):
                answer = self._db.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.02 * 2**attempt))
            if request:
                raise AwsFailure(f"figures of {deployment_id} could not all be written (throttled)")

    def figures_for(self, deployment_id: str) -> list[PeriodFigures]:
        items = self._query_all(pk=_dep_pk(deployment_id), prefix="FIG#")
        return [_in_utc(PeriodFigures.model_validate_json(item["body"]["S"])) for item in items]

    # ------------------------------------------------------------ intents
    def open_intent(
        self, intent: Intent, *, supersede: bool = False, deployment_revision: int | None = None
    ) -> tuple[Intent, list[Intent]]:
        intent = _in_utc(intent)
        for _ in range(10):
            ops: list[_Op] = []
            if deployment_revision is not None:
                ops.append(
                    _Op(
                        "revision",
                        {
                            "ConditionCheck": {
                                "TableName": self._table,
                                "Key": _dep_key(intent.deployment_id),
                                "ConditionExpression": "revision = :r",
                                "ExpressionAttributeValues": {":r": _n(deployment_revision)},
                            }
                        },
                    )
                )
            guard_key = _key("OPEN", intent.deployment_id)
            guard = self._get_item(guard_key)
            holder = self.get_intent(guard["intent_id"]["S"]) if guard else None
            superseded: list[Intent] = []
            new_guard = {**guard_key, "intent_id": _s(intent.id)}
            if guard is None:
                ops.append(_Op("guard", self._put(new_guard, "attribute_not_exists(pk)")))
            else:
                held_by = guard["intent_id"]["S"]
                if holder is not None and holder.is_open and holder.id != intent.id:
                    if not supersede:
                        raise IntentInProgress(
                            f"{holder.kind} by {holder.actor} on this deployment is still being applied; "
                            "nothing was changed by yours"
                        )
                    old = holder.model_copy(update={"status": "superseded"})
                    superseded.append(old)
                    ops.append(_Op("superseded", self._intent_update(old, only_if_open=True)))
                # A guard naming an intent that is closed (or ours) is stale: take it over, if unchanged.
                ops.append(
                    _Op(
                        "guard",
                        self._put(new_guard, "intent_id = :held", values={":held": _s(held_by)}),
                    )
                )
            item = {**self._intent_item(intent), "ins": _n(_sequence())}
            ops.append(_Op("intent", self._put(item, "attribute_not_exists(pk)")))
            ops.append(
                _Op(
                    "pointer",
                    self._put(
                        {
                            **_key(f"INTENT#{intent.id}", "INTENT"),
                            "deployment_id": _s(intent.deployment_id),
                        }
                    ),
                )
            )
            try:
                self._transact(ops)
            except _Cancelled as exc:
                if "revision" in exc.failed:
                    row = self._get_item(_dep_key(intent.deployment_id), projection="revision")
                    theirs = None if row is None else int(row["revision"]["N"])
                    raise StaleDeployment(
                        f"deployment {intent.deployment_id} changed since it was read "
                        f"(revision {theirs}, ours {deployment_revision})"
                    ) from None
                if "intent" in exc.failed:
                    raise ValueError(f"an intent with id {intent.id} already exists") from None
                continue  # the guard (or the superseded intent) changed under us: look again
            return intent, superseded
        raise IntentInProgress(
            "another action on this deployment keeps changing; nothing was changed by yours"
        )

    def complete_intent(self, intent: Intent, deployment: Deployment, audit: AuditRecord) -> Deployment:
        """Deployment (compare-and-set), audit line and intent in one TransactWriteItems. Raises
        StaleDeployment."""
        stored = self._keep_thread(_in_utc(deployment)).model_copy(
            update={"revision": deployment.revision + 1}
        )
        intent = _in_utc(intent)
        ops = [
            _Op("audit", self._put(self._audit_item(_in_utc(audit)), "attribute_not_exists(pk)")),
            *self._intent_ops(intent),
        ]
        self._save_with(ops, deployment, stored)
        return stored

    def save_intent(self, intent: Intent) -> Intent:
        intent = _in_utc(intent)
        self._transact(self._intent_ops(intent))
        return intent

    def _intent_ops(self, intent: Intent) -> list[_Op]:
        # Soft: an intent that is not in the store is not created (as an UPDATE of no row).
        ops = [_Op("intent", self._intent_update(intent), soft=True)]
        recorded = _key("RECORDED", intent.id)
        if intent.status == "recorded":
            ops.append(
                _Op("recorded", self._put({**recorded, "deployment_id": _s(intent.deployment_id)}), soft=True)
            )
        elif not intent.is_open:
            ops.append(_Op("recorded", {"Delete": {"TableName": self._table, "Key": recorded}}))
        if not intent.is_open:
            ops.append(
                _Op(
                    "guard",
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": _key("OPEN", intent.deployment_id),
                            "ConditionExpression": "attribute_not_exists(pk) OR intent_id = :id",
                            "ExpressionAttributeValues": {":id": _s(intent.id)},
                        }
                    },
                    soft=True,  # another intent holds the guard now: leave it
                )
            )
        return ops

    def _intent_update(self, intent: Intent, *, only_if_open: bool = False) -> dict[str, Any]:
        """Save an intent that exists (keeping its insertion order); with only_if_open, if still open."""
        condition = "attribute_exists(pk)" + (" AND #st = :open" if only_if_open else "")
        values = {":status": _s(intent.status), ":body": _s(intent.model_dump_json())}
        if only_if_open:
            values[":open"] = _s("open")
        return {
            "Update": {
                "TableName": self._table,
                "Key": _key(_dep_pk(intent.deployment_id), f"INTENT#{intent.id}"),
                "UpdateExpression": "SET #st = :status, body = :body",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": values,
            }
        }

    def _intent_item(self, intent: Intent) -> dict[str, Any]:
        return {
            **_key(_dep_pk(intent.deployment_id), f"INTENT#{intent.id}"),
            "status": _s(intent.status),
            "created_at": _s(_stamp(intent.created_at)),
            "body": _s(intent.model_dump_json()),
        }

    def get_intent(self, intent_id: str) -> Intent | None:
        pointer = self._get_item(_key(f"INTENT#{intent_id}", "INTENT"))
        if pointer is None:
            return None
        item = self._get_item(_key(_dep_pk(pointer["deployment_id"]["S"]), f"INTENT#{intent_id}"))
        return _load_intent(item) if item else None

    def open_intent_for(self, deployment_id: str) -> Intent | None:
        guard = self._get_item(_key("OPEN", deployment_id))
        if guard is None:
            return None
        item = self._get_item(_key(_dep_pk(deployment_id), f"INTENT#{guard['intent_id']['S']}"))
        intent = _load_intent(item) if item else None
        return intent if intent is not None and intent.is_open else None

    def open_intents(self) -> list[Intent]:
        """Rollbacks first, then oldest first."""
        guards = self._query_all(pk="OPEN")
        keys = [_key(_dep_pk(g["sk"]["S"]), f"INTENT#{g['intent_id']['S']}") for g in guards]
        items = [item for item in self._batch_get(keys) if _load_intent(item).is_open]
        items.sort(key=lambda item: (_load_intent(item).priority, *_intent_order(item)))
        return [_load_intent(item) for item in items]

    def unfinished_intents(self) -> list[Intent]:
        """Open intents and recorded ones (alias write recorded, follow-up not done); rollbacks first."""
        keys = [
            _key(_dep_pk(g["sk"]["S"]), f"INTENT#{g['intent_id']['S']}") for g in self._query_all(pk="OPEN")
        ]
        keys += [
            _key(_dep_pk(r["deployment_id"]["S"]), f"INTENT#{r['sk']['S']}")
            for r in self._query_all(pk="RECORDED")
        ]
        items = [item for item in self._batch_get(keys) if _load_intent(item).status in ("open", "recorded")]
        unique = {item["sk"]["S"]: item for item in items}.values()
        ordered = sorted(unique, key=lambda item: (_load_intent(item).priority, *_intent_order(item)))
        return [_load_intent(item) for item in ordered]

    def intents_for(self, deployment_id: str) -> list[Intent]:
        """Oldest first."""
        items = self._query_all(pk=_dep_pk(deployment_id), prefix="INTENT#")
        return [_load_intent(item) for item in sorted(items, key=_intent_order)]

    # ------------------------------------------------------------ leases
    def acquire_lease(self, name: str, owner: str, now: datetime, ttl_seconds: float) -> int | None:
        """Hold `name` until now + ttl; the fencing token, or None while someone else holds it.

        A renewal by the holder keeps the token (one conditional update); taking a free, lapsed or never
        used lease adds 1 to it (a second conditional update). The lease item never expires (TTL), so the
        token only grows.
        """
        now = _require_aware(now, "acquire_lease(now)")
        key = _key(f"LEASE#{name}", "LEASE")
        values = {
            ":owner": _s(owner),
            ":now": _s(_stamp(now)),
            ":exp": _s(_stamp(now + timedelta(seconds=ttl_seconds))),
        }
        try:
            renewed = self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET held_until = :exp",
                ConditionExpression="#o = :owner AND held_until > :now",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            return int(renewed["Attributes"]["token"]["N"])
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        try:
            taken = self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #o = :owner, held_until = :exp ADD #t :one",
                ConditionExpression="attribute_not_exists(pk) OR held_until <= :now",
                ExpressionAttributeNames={"#o": "owner", "#t": "token"},
                ExpressionAttributeValues={**values, ":one": _n(1)},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return int(taken["Attributes"]["token"]["N"])

    def release_lease(self, name: str, owner: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(f"LEASE#{name}", "LEASE"),
                UpdateExpression="SET held_until = :epoch",
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": _s(owner), ":epoch": _s(_stamp(_EPOCH))},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    def holds_lease(self, name: str, owner: str, token: int, now: datetime) -> bool:
        item = self._get_item(_key(f"LEASE#{name}", "LEASE"))
        if item is None:
            return False
        return bool(
            item["owner"]["S"] == owner
            and int(item["token"]["N"]) == token
            and item["held_until"]["S"] > _stamp(now)
        )

    # ------------------------------------------------------------ outbox
    def enqueue(self, message: OutboxMessage) -> bool:
        """Add unless the key exists; True when added. The id (order within the lane) comes from a counter."""
        message = _in_utc(message)
        if self._get_item(_outbox_key(message.key), projection="pk") is not None:
            return False  # the common repeat: no id spent on it
        stored = message.model_copy(update={"id": self._next("SEQ", "OUTBOX")})
        try:
            self._db.put_item(**self._put(_outbox_item(stored), "attribute_not_exists(pk)")["Put"])
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def outbox_heads(self, now: datetime, limit: int = 50) -> list[OutboxMessage]:
        """The first pending message of every lane whose next attempt is due, oldest first."""
        due = _stamp(_require_aware(now, "outbox_heads(now)"))
        heads: dict[str, dict[str, Any]] = {}
        for row in self._query_iter(index="outbox", condition="opk = :p", values={":p": _s("PENDING")}):
            heads.setdefault(row["lane"]["S"], row)
        wanted = [row for row in heads.values() if row["next_at"]["S"] <= due]
        wanted.sort(key=lambda row: row["osk"]["S"])
        items = self._batch_get([_key(row["pk"]["S"], "OUTBOX") for row in wanted[:limit]])
        messages = [_load_outbox(item) for item in items]
        fresh = [m for m in messages if m.status == "pending" and _stamp(m.next_attempt_at) <= due]
        return sorted(fresh, key=lambda m: m.id or 0)

    def outbox_message(self, key: str) -> OutboxMessage | None:
        item = self._get_item(_outbox_key(key))
        return _load_outbox(item) if item else None

    def outbox_pending(self) -> int:
        total = 0
        kwargs: dict[str, Any] = {}
        while True:
            page = self._db.query(
                TableName=self._table,
                IndexName="outbox",
                KeyConditionExpression="opk = :p",
                ExpressionAttributeValues={":p": _s("PENDING")},
                Select="COUNT",
                **kwargs,
            )
            total += int(page["Count"])
            if "LastEvaluatedKey" not in page:
                return total
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    def save_outbox(self, message: OutboxMessage) -> OutboxMessage:
        if message.id is None:
            raise ValueError("save_outbox needs a message read from the store (it has no id)")
        message = _in_utc(message)
        try:
            self._db.put_item(**self._put(_outbox_item(message), "attribute_exists(pk)")["Put"])
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        return message

    # ------------------------------------------------------------ deploy locks
    def put_lock(self, lock: DeployLock) -> None:
        lock = _in_utc(lock)
        _require_aware(lock.since, "put_lock")
        self._db.put_item(
            TableName=self._table,
            Item={**_key("LOCK", _lock_sk(lock)), "body": _s(lock.model_dump_json())},
        )

    def locks_for(self, function: str, alias: str) -> list[DeployLock]:
        items = self._query_all(pk="LOCK", prefix=f"{function}#{alias}#")
        return _sorted_locks(items)

    def remove_locks(self, function: str, alias: str) -> list[DeployLock]:
        removed = []
        for lock in self.locks_for(function, alias):
            answer = self._db.delete_item(
                TableName=self._table, Key=_key("LOCK", _lock_sk(lock)), ReturnValues="ALL_OLD"
            )
            if "Attributes" in answer:
                removed.append(DeployLock.model_validate_json(answer["Attributes"]["body"]["S"]))
        return removed

    def list_locks(self) -> list[DeployLock]:
        locks = _sorted_locks(self._query_all(pk="LOCK"))
        return sorted(locks, key=lambda lock: (lock.function, lock.alias))

    # ------------------------------------------------------------ user groups
    def save_group_members(self, group_id: str, members: Sequence[str], now: datetime) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                **_key(f"GROUP#{group_id}", "GROUP"),
                "members": _s(json.dumps(sorted(members))),
                "seen_at": _s(_stamp(_require_aware(now, "save_group_members"))),
            },
        )

    def group_members(self, group_id: str) -> tuple[frozenset[str], datetime] | None:
        item = self._get_item(_key(f"GROUP#{group_id}", "GROUP"))
        if item is None:
            return None
        return frozenset(json.loads(item["members"]["S"])), datetime.fromisoformat(item["seen_at"]["S"])

    # ------------------------------------------------------------ plumbing
    def _put(
        self,
        item: dict[str, Any],
        condition: str | None = None,
        *,
        values: dict[str, Any] | None = None,
        names: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self._table, "Item": item}
        if condition:
            put["ConditionExpression"] = condition
        if values:
            put["ExpressionAttributeValues"] = values
        if names:
            put["ExpressionAttributeNames"] = names
        return {"Put": put}

    def _transact(self, ops: list[_Op]) -> None:
        """One TransactWriteItems. When only soft ops failed, drop them and try once more; otherwise raise
        _Cancelled with the tags whose condition failed."""
        for attempt in range(20):
            if not ops:
                return  # only soft ops, all of them not ours to apply
            try:
                self._db.transact_write_items(TransactItems=[op.item for op in ops])
                return
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons") or []
                failed = [
                    op
                    for op, reason in zip(ops, reasons, strict=False)
                    if reason.get("Code") == "ConditionalCheckFailed"
                ]
                if not failed:
                    # Conflict with another transaction in flight (TransactionConflict): try again.
                    if any(r.get("Code") == "TransactionConflict" for r in reasons):
                        time.sleep(min(0.5, 0.01 * 2**attempt))
                        continue
                    raise
                if all(op.soft for op in failed):
                    ops = [op for op in ops if op not in failed]
                    continue
                raise _Cancelled([op.tag for op in failed if not op.soft]) from exc
        raise AwsFailure("DynamoDB kept cancelling the transaction (TransactionConflict); try again")

    def _next(self, pk: str, sk: str) -> int:
        answer = self._db.update_item(
            TableName=self._table,
            Key=_key(pk, sk),
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": _n(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["n"]["N"])

    def _get_item(self, key: dict[str, Any], *, projection: str | None = None) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"ProjectionExpression": projection} if projection else {}
        item: dict[str, Any] | None = self._db.get_item(
            TableName=self._table, Key=key, ConsistentRead=True, **kwargs
        ).get("Item")
        return item

    def _query_iter(
        self,
        *,
        pk: str | None = None,
        prefix: str | None = None,
        index: str | None = None,
        condition: str | None = None,
        values: dict[str, Any] | None = None,
        forward: bool = True,
        page: int | None = None,
        **extra: Any,
    ) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self._table, "ScanIndexForward": forward, **extra}
        if index is None:
            kwargs["ConsistentRead"] = True
            condition = "pk = :pk" + (" AND begins_with(sk, :prefix)" if prefix else "")
            values = {":pk": _s(pk or ""), **({":prefix": _s(prefix)} if prefix else {})}
        else:
            kwargs["IndexName"] = index
        kwargs["KeyConditionExpression"] = condition
        kwargs["ExpressionAttributeValues"] = values
        if page:
            kwargs["Limit"] = page
        while True:
            answer = self._db.query(**kwargs)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self._query_iter(**kwargs))

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Consistent BatchGetItem in chunks of 100, retrying unprocessed keys."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            for attempt in range(10):
                answer = self._db.batch_get_item(RequestItems=request)
                found.extend(answer.get("Responses", {}).get(self._table, []))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.02 * 2**attempt))
        return found

    def _stale(self, deployment: Deployment) -> StaleDeployment:
        row = self._get_item(_dep_key(deployment.id), projection="revision")
        if row is None:
            return StaleDeployment(f"deployment {deployment.id} is not in the store; create it before saving")
        return StaleDeployment(
            f"deployment {deployment.id} ({deployment.key}) changed since it was read: "
            f"stored revision {int(row['revision']['N'])}, ours {deployment.revision}"
        )

    def _live_conflict(self, deployment: Deployment) -> LiveDeploymentExists:
        holder = self.live_for(deployment.function, deployment.alias)
        which = f"{holder.id} ({holder.state.value})" if holder else "another deployment"
        return LiveDeploymentExists(
            f"{deployment.key} already has a live deployment: {which}; "
            f"{deployment.id} cannot be live at the same time"
        )


# ---------------------------------------------------------------- items and values
_last_sequence = 0


def _sequence() -> int:
    """Insertion order of deployments created by this process (ties of created_at), monotonic."""
    global _last_sequence
    _last_sequence = max(_last_sequence + 1, time.time_ns())
    return _last_sequence


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": _s(pk), "sk": _s(sk)}


def _dep_pk(deployment_id: str) -> str:
    return f"DEP#{deployment_id}"


def _dep_key(deployment_id: str) -> dict[str, Any]:
    return _key(_dep_pk(deployment_id), "DEP")


def _outbox_key(key: str) -> dict[str, Any]:
    return _key(f"OUTBOX#{key}", "OUTBOX")


def _lock_sk(lock: DeployLock) -> str:
    return lock.key


def _sorted_locks(items: list[dict[str, Any]]) -> list[DeployLock]:
    locks = [DeployLock.model_validate_json(item["body"]["S"]) for item in items]
    return sorted(locks, key=lambda lock: (lock.since, lock.version or "*"))


def _alias_key(d: Deployment) -> str:
    return f"{d.function}#{d.alias}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _live_guard(d: Deployment) -> dict[str, Any]:
    return {**_key("LIVE", _alias_key(d)), "dep_id": _s(d.id)}


def _deployment_item(d: Deployment, ins: int) -> dict[str, Any]:
    created = _stamp(d.created_at)
    item: dict[str, Any] = {
        **_dep_key(d.id),
        "function": _s(d.function),
        "alias": _s(d.alias),
        "state": _s(d.state.value),
        "live": {"BOOL": d.is_live},
        "revision": _n(d.revision),
        "created_at": _s(created),
        "ins": _n(ins),
        "body": _s(d.model_dump_json()),
        "gsi1pk": _s(f"FN#{d.function}"),
        "gsi1sk": _s(f"{created}#{ins:020d}"),
    }
    if d.thread_ts and d.channel:
        item["thread_ch"] = _s(d.channel)
        item["thread_ts"] = _s(d.thread_ts)
    if d.state is State.PROMOTED and d.watch_until is not None:
        item["gsi2pk"] = _s("WATCH")
        item["gsi2sk"] = _s(f"{_stamp(d.watch_until)}#{d.id}")
    return item


def _outbox_item(m: OutboxMessage) -> dict[str, Any]:
    assert m.id is not None
    item: dict[str, Any] = {
        **_outbox_key(m.key),
        "id": _n(m.id),
        "lane": _s(m.lane),
        "status": _s(m.status),
        "next_at": _s(_stamp(m.next_attempt_at)),
        "body": _s(m.model_dump_json(exclude={"id"})),
    }
    if m.status == "pending":
        item["opk"] = _s("PENDING")
        item["osk"] = _s(f"{m.id:020d}")
    else:
        last = max(t for t in (m.created_at, m.next_attempt_at, m.sent_at) if t is not None)
        item[TTL_ATTRIBUTE] = _n(_epoch(last + OUTBOX_TTL))
    return item


def _load_deployment(item: dict[str, Any]) -> Deployment:
    d = _in_utc(Deployment.model_validate_json(item["body"]["S"]))
    if not d.thread_ts and "thread_ts" in item:  # recorded by record_thread, beside the body
        d = d.model_copy(update={"channel": item["thread_ch"]["S"], "thread_ts": item["thread_ts"]["S"]})
    return d


def _intent_order(item: dict[str, Any]) -> tuple[str, int]:
    """Oldest first; ties in the order opened."""
    return item["created_at"]["S"], int(item.get("ins", {"N": "0"})["N"])


def _load_intent(item: dict[str, Any]) -> Intent:
    return _in_utc(Intent.model_validate_json(item["body"]["S"]))


def _load_outbox(item: dict[str, Any]) -> OutboxMessage:
    message = OutboxMessage.model_validate_json(item["body"]["S"])
    return _in_utc(message.model_copy(update={"id": int(item["id"]["N"])}))


__all__ = [
    "CLAIM_TTL",
    "OUTBOX_TTL",
    "SCHEMA_VERSION",
    "TTL_ATTRIBUTE",
    "DynamoStore",
    "StoreMissing",
    "create_table",
    "table_definition",
]
