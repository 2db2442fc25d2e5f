"""pytest plugin: every `make_world()` gets a fresh DynamoDB table in moto instead of SQLite in memory.

    python -m pytest -p tests.support.dynamodb_world tests/test_durable_actions.py ...

(`make test-dynamodb`) runs the service-level suites — intents, reconciler, alarm responder, soak and watch
runners — on the DynamoDB store, beside the store contract suite that `make test` runs on all three stores.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

import tests.support.world as world
from bot.aws.clients import aws_client
from bot.store.dynamodb import DynamoStore, create_table
from tests.support.store import atomic_moto_dynamodb

_tables = itertools.count()


@pytest.fixture(autouse=True)
def _worlds_on_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with mock_aws(), atomic_moto_dynamodb():
        client = aws_client("dynamodb", region="us-east-1")

        def open_table(_url: str, **_kwargs: Any) -> DynamoStore:
            name = f"world-{next(_tables)}"
            create_table(client, name)
            return DynamoStore(client, name)

        monkeypatch.setattr(world, "open_store", open_table)
        yield
