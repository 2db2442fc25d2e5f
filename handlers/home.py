"""App Home: active canaries with weights, state and time left, and only the actions the viewer may take."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import views
from bot.actors import Actor, NotAuthorized
from bot.model import Deployment
from commands.base import Deps

ACTION_TO_RULE = {
    "promote": "promote",
    "rollback": "rollback",
    "extend": "extend",
    "hold": "hold",
    "resume": "resume",
}


def _ack(ack: Ack) -> None:
    ack()


def register(app: App, deps: Deps) -> None:
    def home(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        publish_home(client, event["user"], deps)

    app.event("app_home_opened")(ack=_ack, lazy=[home])


def publish_home(client: WebClient, user_id: str, deps: Deps) -> None:
    viewer = Actor(id=user_id, name=user_id, source="slack")
    service = deps.service

    def can_act(d: Deployment, action: str) -> bool:
        from bot import canary

        transition = {"rollback": "begin_rollback", "promote": "promote", "extend": "extend"}.get(
            action, action
        )
        if transition in canary.LEGAL and not canary.can(d, transition):
            return False
        try:
            service.authorizer.check(viewer, service.policy_for(d.function), ACTION_TO_RULE[action], d)  # type: ignore[arg-type]
        except NotAuthorized:
            return False
        return True

    entries = service.status()
    client.views_publish(
        user_id=user_id, view=views.home_view(entries, now=deps.clock.now(), can_act=can_act)
    )
