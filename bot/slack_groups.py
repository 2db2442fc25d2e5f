"""Slack user groups resolved with usergroups.users.list, cached briefly (approver checks run on every click).

The last membership seen of each group is kept in the store: while Slack cannot be asked (an outage, a
restart during one), approvers listed through a group can still act — above all, roll back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.ports import Clock

log = logging.getLogger(__name__)


class SlackGroupDirectory:
    def __init__(
        self,
        client: WebClient,
        clock: Clock,
        ttl: timedelta = timedelta(seconds=60),
        *,
        store: GroupMemory | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[datetime, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        now = self._clock.now()
        with self._lock:
            cached = self._cache.get(group_id)
            if cached and now - cached[0] < self._ttl:
                return cached[1]
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
            users = frozenset(str(u) for u in response.get("users") or [])
        except (SlackClientError, OSError) as exc:
            why = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
            log.warning("could not read user group %s (%s): using the last membership seen", group_id, why)
            if cached:
                return cached[1]
            remembered = self._store.group_members(group_id) if self._store is not None else None
            # Never seen: fail closed (the click is refused, not allowed).
            return remembered[0] if remembered is not None else frozenset()
        with self._lock:
            self._cache[group_id] = (now, users)
        if self._store is not None:
            try:
                self._store.save_group_members(group_id, sorted(users), now)
            except Exception:
                log.exception("could not remember the members of %s", group_id)
        return users


class GroupMemory(Protocol):
    """The part of the store that remembers group memberships."""

    def save_group_members(self, group_id: str, members: Sequence[str], now: datetime) -> None: ...

    def group_members(self, group_id: str) -> tuple[frozenset[str], datetime] | None: ...
