"""The durable store. `open_store(settings.store_url)` is the one way the app gets a StorePort."""

from __future__ import annotations

import sqlite3

from bot.store.dynamodb import DynamoStore, StoreMissing
from bot.store.schema import SCHEMA_VERSION, SchemaTooNew
from bot.store.sqlite import MEMORY, SqliteStore

__all__ = [
    "MEMORY",
    "SCHEMA_VERSION",
    "DynamoStore",
    "SchemaTooNew",
    "SqliteStore",
    "StoreMissing",
    "StoreUnavailable",
    "dynamodb_table",
    "open_store",
    "sqlite_path",
]

_MEMORY_URLS = frozenset({"sqlite://:memory:", "sqlite:///:memory:"})
_FILE_PREFIX = "sqlite:///"
_DYNAMODB_PREFIX = "dynamodb://"
_ACCEPTED = "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite://:memory:"
_ACCEPTED_ALL = f"{_ACCEPTED}, or dynamodb://TABLE"


class StoreUnavailable(ValueError):
    """The store cannot be opened (bad path, no permission, not a database): one line, said at start-up."""


def open_store(url: str, *, region: str | None = None) -> SqliteStore | DynamoStore:
    """Open the store `url` names: SQLite (creating the file, its directories and its schema as needed), or
    an existing DynamoDB table (region and endpoint from the standard AWS settings).

    Raises ValueError for a URL of another form, StoreUnavailable (a ValueError) when a SQLite store cannot be
    opened, and StoreMissing (a ValueError) when the table is not there (`canary-bot init-store` creates it),
    so the CLI and `serve` say one line and exit 2 instead of a traceback.
    """
    table = dynamodb_table(url)
    if table is not None:
        from bot.aws.clients import aws_client

        return DynamoStore(aws_client("dynamodb", region=region), table)
    try:
        path = sqlite_path(url)
    except ValueError:
        raise ValueError(
            f"CANARY_STORE_URL={url!r} is not a store URL this bot understands; use {_ACCEPTED_ALL}"
        ) from None
    try:
        return SqliteStore(path)
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise StoreUnavailable(
            f"CANARY_STORE_URL={url!r}: cannot open the store at {path}: {reason}"
        ) from exc


def dynamodb_table(url: str) -> str | None:
    """The table name in a dynamodb://TABLE URL; None for any other scheme. ValueError for a bad name."""
    if not url.startswith(_DYNAMODB_PREFIX):
        return None
    table = url.removeprefix(_DYNAMODB_PREFIX)
    if not (3 <= len(table) <= 255) or not all(c.isalnum() or c in "_.-" for c in table):
        raise ValueError(
            f"CANARY_STORE_URL={url!r}: a DynamoDB table name is 3-255 letters, digits, '_', '-' or '.'"
        )
    return table


def sqlite_path(url: str) -> str:
    """The database path in a CANARY_STORE_URL, or MEMORY. Raises ValueError for any other form."""
    if url in _MEMORY_URLS:
        return MEMORY
    if url.startswith(_FILE_PREFIX):
        # "sqlite:///a/b.db" -> "a/b.db" (relative to the working directory); "sqlite:////a/b.db" -> "/a/b.db"
        path = url.removeprefix(_FILE_PREFIX)
        if path and not path.endswith("/") and "?" not in path:
            return path
    raise ValueError(f"CANARY_STORE_URL={url!r} is not a store URL this bot understands; use {_ACCEPTED}")
