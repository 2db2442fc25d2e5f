"""App Home: active canaries with weights, state and time left, and only the actions the viewer may take."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import views
from bot.actors import Actor
from bot.model import Deployment
from commands.base import Deps, ack_now


def register(app: App, deps: Deps) -> None:
    def home(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        publish_home(client, event["user"], deps)

    app.event("app_home_opened")(ack=ack_now, lazy=[home])


def publish_home(client: WebClient, user_id: str, deps: Deps) -> None:
    viewer = Actor(id=user_id, name=user_id, source="slack")
    service = deps.service

    def can_act(d: Deployment, action: str) -> bool:
        return action in ("promote", "rollback", "extend", "hold", "resume") and service.may(
            viewer,
            d,
            action,  # type: ignore[arg-type]
        )

    entries = service.status()
    client.views_publish(
        user_id=user_id, view=views.home_view(entries, now=deps.clock.now(), can_act=can_act)
    )
