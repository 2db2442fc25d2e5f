"""App Home: active canaries with weights, state and time left, and only the actions the viewer may take.

A click on a Home button has no message to answer (a view has no response_url): its outcome, or why it was
refused, is shown at the top of the clicker's Home. Every change the service announces re-publishes the Home of
everyone who opened it since this process started, so no Home keeps buttons for a state that is gone.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import views
from bot.actors import Actor
from bot.events import AnyEvent, SoakReport, WatchCheckIn
from bot.model import Deployment
from bot.views.lists import HOME_CHOICES
from commands.base import Deps, Reply, ack_now

log = logging.getLogger(__name__)

# Homes kept fresh: the most recent viewers (each refresh is one views.publish per viewer).
MAX_VIEWERS = 100


class HomeBoard:
    """Publishes App Homes: on opening, after a click (with its outcome), and after every change."""

    def __init__(
        self, client: WebClient, deps: Deps, *, max_viewers: int = MAX_VIEWERS, background: bool = True
    ) -> None:
        self._client = client
        self._deps = deps
        self._max = max_viewers
        self._viewers: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        # Refreshes run on their own thread, coalesced: a slow or failing Slack never delays the service
        # (a soak tick, an alarm rollback) that announced the change. background=False: at once (tests).
        self._background = background
        self._wanted = threading.Event()
        self._worker: threading.Thread | None = None

    def seen(self, user_id: str) -> None:
        with self._lock:
            self._viewers[user_id] = None
            self._viewers.move_to_end(user_id)
            while len(self._viewers) > self._max:
                self._viewers.popitem(last=False)

    def viewers(self) -> list[str]:
        with self._lock:
            return list(self._viewers)

    def publish(self, user_id: str, *, notice: Reply | None = None) -> None:
        """The viewer's Home as of now; `notice` (a click's outcome or refusal) is shown at its top."""
        self.seen(user_id)
        viewer = Actor(id=user_id, name=user_id, source="slack")
        service = self._deps.service

        def can_act(d: Deployment, action: str) -> bool:
            return action in HOME_CHOICES and service.may(viewer, d, action)

        view = views.home_view(
            service.status(),
            now=self._deps.clock.now(),
            can_act=can_act,
            notice=notice.text if notice is not None else None,
            locks=self._deps.recovery().locks.locks(),
        )
        self._client.views_publish(user_id=user_id, view=view)

    # No state change in these: the Home shows the same buttons.
    QUIET = (SoakReport, WatchCheckIn)

    def on_announced(self, event: AnyEvent) -> None:
        """Every change the bot announces brings the App Homes people have open up to date."""
        if not isinstance(event, self.QUIET):
            self.refresh_soon()

    def refresh_soon(self) -> None:
        """Ask for every open Home to be re-published (now when not in the background)."""
        if not self._background:
            self.refresh_all()
            return
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._refresh_loop, name="app-home", daemon=True)
                self._worker.start()
        self._wanted.set()

    def _refresh_loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            self.refresh_all()

    def refresh_all(self) -> None:
        """Re-publish every known viewer's Home; a failure is logged and never stops the others."""
        for user_id in self.viewers():
            try:
                self.publish(user_id)
            except Exception:
                log.exception("could not refresh the App Home of %s", user_id)


def from_home(body: dict[str, Any]) -> bool:
    """Whether an interaction came from the App Home (a view, which has no response_url)."""
    container = body.get("container") or {}
    return container.get("type") == "view" or (body.get("view") or {}).get("type") == "home"


def register(app: App, board: HomeBoard) -> None:
    def home(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        board.publish(event["user"])

    app.event("app_home_opened")(ack=ack_now, lazy=[home])
