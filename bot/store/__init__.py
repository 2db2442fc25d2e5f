"""The durable store. `open_store(settings.store_url)` is the one way the app gets a StorePort."""

from __future__ import annotations

import sqlite3

from bot.store.schema import SCHEMA_VERSION, SchemaTooNew
from bot.store.sqlite import MEMORY, SqliteStore

__all__ = [
    "MEMORY",
    "SCHEMA_VERSION",
    "SchemaTooNew",
    "SqliteStore",
    "StoreUnavailable",
    "open_store",
    "sqlite_path",
]

_MEMORY_URLS = frozenset({"sqlite://:memory:", "sqlite:///:memory:"})
_FILE_PREFIX = "sqlite:///"
_ACCEPTED = "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite://:memory:"


class StoreUnavailable(ValueError):
    """The store cannot be opened (bad path, no permission, not a database): one line, said at start-up."""


def open_store(url: str) -> SqliteStore:
    """Open (creating the file, its directories and its schema as needed) the store `url` names.

    Raises ValueError for a URL of another form and StoreUnavailable (a ValueError) when it cannot be opened,
    so the CLI and `serve` say one line and exit 2 instead of a traceback.
    """
    path = sqlite_path(url)
    try:
        return SqliteStore(path)
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise StoreUnavailable(
            f"CANARY_STORE_URL={url!r}: cannot open the store at {path}: {reason}"
        ) from exc


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
