"""Slack user groups resolved with usergroups.users.list, cached briefly (approver checks run on every click)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.ports import Clock

log = logging.getLogger(__name__)


class SlackGroupDirectory:
    def __init__(self, client: WebClient, clock: Clock, ttl: timedelta = timedelta(seconds=60)) -> None:
        self._client = client
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
        except SlackApiError as exc:
            # Fail closed: an unreadable group grants nothing (the click is refused, not allowed).
            log.warning("could not read user group %s: %s", group_id, exc.response.get("error"))
            return cached[1] if cached else frozenset()
        with self._lock:
            self._cache[group_id] = (now, users)
        return users
