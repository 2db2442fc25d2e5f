"""What only the DynamoDB store has: its table (init-store), TTL on rows that may expire, the append-only
condition on audit lines, a missing table said in one line, and the schema version."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bot.aws.clients import aws_client
from bot.cli import main
from bot.outbox_model import OutboxMessage
from bot.store import DynamoStore, SchemaTooNew, StoreMissing, dynamodb_table, open_store
from bot.store.dynamodb import CLAIM_TTL, OUTBOX_TTL, SCHEMA_VERSION, TTL_ATTRIBUTE
from tests.support.store import T0, TABLE, atomic_moto_dynamodb, make_audit, make_deployment

URL = f"dynamodb://{TABLE}"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws(), atomic_moto_dynamodb():
        yield aws_client("dynamodb", region="us-east-1")


@pytest.fixture
def store(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    monkeypatch.setenv("CANARY_STORE_URL", URL)
    assert main(["init-store"]) == 0
    opened = open_store(URL, region="us-east-1")
    assert isinstance(opened, DynamoStore)
    yield opened
    opened.close()


def _item(dynamodb: Any, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"]
    return item


# ---------------------------------------------------------------- init-store
def test_init_store_creates_an_on_demand_table_with_ttl_and_is_idempotent(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CANARY_STORE_URL", URL)

    assert main(["init-store"]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["init-store"]) == 0
    assert "already exists" in capsys.readouterr().out

    table = dynamodb.describe_table(TableName=TABLE)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"by_function", "watching", "outbox"}
    ttl = dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == TTL_ATTRIBUTE
    assert _item(dynamodb, "META", "SCHEMA")["version"] == {"N": str(SCHEMA_VERSION)}


def test_init_store_on_sqlite_creates_the_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CANARY_STORE_URL", f"sqlite:///{tmp_path / 'data' / 'bot.db'}")
    assert main(["init-store"]) == 0
    assert (tmp_path / "data" / "bot.db").is_file()
    assert "SQLite store ready" in capsys.readouterr().out


# ---------------------------------------------------------------- a missing table
def test_opening_a_missing_table_says_how_to_create_it(dynamodb: Any) -> None:
    with pytest.raises(StoreMissing, match=f"{TABLE} does not exist.*canary-bot init-store"):
        open_store(URL, region="us-east-1")


def test_the_cli_says_in_one_line_that_the_table_is_missing_and_exits_2(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CANARY_STORE_URL", URL)
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "init-store" in err[0]


def test_serve_says_in_one_line_that_the_table_is_missing_and_exits_2(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CANARY_STORE_URL", URL)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "init-store" in err[0]


@pytest.mark.parametrize("url", ["dynamodb://", "dynamodb://a", "dynamodb://bad/name"])
def test_a_bad_table_name_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="DynamoDB table name"):
        dynamodb_table(url)


def test_other_urls_name_every_accepted_form() -> None:
    with pytest.raises(ValueError, match=r"sqlite://:memory:, or dynamodb://TABLE"):
        open_store("postgres://db/canary")


def test_a_table_written_by_a_newer_bot_is_refused(store: DynamoStore, dynamodb: Any) -> None:
    dynamodb.put_item(
        TableName=TABLE,
        Item={"pk": {"S": "META"}, "sk": {"S": "SCHEMA"}, "version": {"N": str(SCHEMA_VERSION + 1)}},
    )
    with pytest.raises(SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 1}"):
        open_store(URL, region="us-east-1")


# ---------------------------------------------------------------- TTL
def test_claims_expire_after_their_ttl(store: DynamoStore, dynamodb: Any) -> None:
    store.claim("sqs:m-1", T0)
    expires = int(_item(dynamodb, "CLAIM#sqs:m-1", "CLAIM")[TTL_ATTRIBUTE]["N"])
    assert expires == int((T0 + CLAIM_TTL).timestamp())


def test_outbox_rows_get_a_ttl_once_sent_and_none_while_pending(store: DynamoStore, dynamodb: Any) -> None:
    store.enqueue(OutboxMessage(key="k", lane="l", method="post", next_attempt_at=T0, created_at=T0))
    assert TTL_ATTRIBUTE not in _item(dynamodb, "OUTBOX#k", "OUTBOX")
    [head] = store.outbox_heads(T0)
    sent_at = T0 + timedelta(minutes=3)

    store.save_outbox(head.model_copy(update={"status": "sent", "sent_at": sent_at}))

    row = _item(dynamodb, "OUTBOX#k", "OUTBOX")
    assert int(row[TTL_ATTRIBUTE]["N"]) == int((sent_at + OUTBOX_TTL).timestamp())
    assert "opk" not in row  # out of the pending index


def test_deployments_audit_intents_and_leases_never_expire(store: DynamoStore, dynamodb: Any) -> None:
    store.create(make_deployment())
    store.append_audit(make_audit())
    store.acquire_lease("deployment:dep-1", "a", T0, 30)
    items = dynamodb.scan(TableName=TABLE)["Items"]
    kept = [i for i in items if i["pk"]["S"].startswith(("DEP#", "LEASE#", "LIVE"))]
    assert kept and all(TTL_ATTRIBUTE not in i for i in kept)


# ---------------------------------------------------------------- append-only audit
def test_an_audit_line_is_never_overwritten_even_if_its_sequence_is_reused(
    store: DynamoStore, dynamodb: Any
) -> None:
    store.append_audit(make_audit(action="promote"))
    # A counter set back (by hand, or a restore) would point the next line at an existing one.
    dynamodb.put_item(
        TableName=TABLE, Item={"pk": {"S": "DEP#dep-1"}, "sk": {"S": "SEQ#AUDIT"}, "n": {"N": "0"}}
    )

    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        store.append_audit(make_audit(action="rollback"))

    assert [r.action for r in store.audit_for("dep-1")] == ["promote"]


def test_replicas_on_one_table_see_each_others_writes(store: DynamoStore) -> None:
    other = open_store(URL, region="us-east-1")
    store.create(make_deployment())
    live = other.live_for("checkout", "live")
    assert live is not None and live.id == "dep-1"
    token = store.acquire_lease("deployment:dep-1", "replica-a", T0, 30)
    assert token is not None
    assert other.acquire_lease("deployment:dep-1", "replica-b", T0, 30) is None
