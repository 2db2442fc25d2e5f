"""The Slack surface wired for tests: the real Bolt app, service and notifier, a fake Slack Web API, fake Lambda."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.actors import Authorizer
from bot.app import create_app
from bot.clock import ManualClock
from bot.config import Policy, Settings
from bot.outbox import Outbox, OutboxDrainer
from bot.slack_client import RetryPolicy, make_web_client
from bot.slack_groups import SlackGroupDirectory
from bot.slack_notifier import SlackNotifier
from bot.store import open_store
from tests.support import slack_requests as req
from tests.support.fake_slack import FakeSlack
from tests.support.world import World, make_world, policy_with

STARTER = "USTARTER"
APPROVER = "UAPPROVER1"
APPROVER_2 = "UAPPROVER2"
OUTSIDER = "UOUTSIDER"
GROUP = "S0SREONCALL"


@dataclass
class SlackWorld:
    world: World
    slack: FakeSlack
    app: App

    def dispatch(self, signed: req.SignedRequest) -> BoltResponse:
        return self.app.dispatch(BoltRequest(body=signed.body, headers=dict(signed.headers)))

    def command(
        self, text: str, user: str = STARTER, channel: str = req.CHANNEL_ID, **kw: Any
    ) -> BoltResponse:
        return self.dispatch(
            req.slash_command(
                text=text,
                user_id=user,
                user_name=user.lower(),
                channel_id=channel,
                response_url=self.slack.response_url(f"cmd-{len(self.slack.calls())}"),
                **kw,
            )
        )

    def click(self, action_id: str, value: str, user: str = APPROVER, **kw: Any) -> BoltResponse:
        return self.dispatch(
            req.block_actions(
                action_id,
                value,
                user_id=user,
                user_name=user.lower(),
                response_url=self.slack.response_url(f"click-{len(self.slack.calls())}"),
                **kw,
            )
        )

    def responses(self) -> list[dict[str, Any]]:
        return [c.params for c in self.slack.calls("response_url")]

    def last_response(self) -> dict[str, Any]:
        return self.responses()[-1]

    def buttons(self, blocks: list[dict[str, Any]]) -> dict[str, str]:
        """action_id → value of every button in the blocks."""
        found: dict[str, str] = {}
        for block in blocks:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("type") == "button":
                    found[element["action_id"]] = element.get("value", "")
            accessory = block.get("accessory")
            if accessory and accessory.get("type") == "button":
                found[accessory["action_id"]] = accessory.get("value", "")
        return found

    def text_of(self, payload: dict[str, Any]) -> str:
        return json.dumps(payload, ensure_ascii=False)


@contextmanager
def slack_world(policy: Policy | None = None, **policy_overrides: Any) -> Iterator[SlackWorld]:
    policy = policy or policy_with(
        approvers=[GROUP],
        channel="#deploys",
        allowed_channels=["#deploys", req.CHANNEL_ID],
        **policy_overrides,
    )
    with FakeSlack(
        usergroups={GROUP: [APPROVER, APPROVER_2, STARTER]}, channels={"#deploys": req.CHANNEL_ID}
    ) as slack:
        client = make_web_client(
            "xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None)
        )
        clock = ManualClock()
        store = open_store("sqlite://:memory:")
        drainer = OutboxDrainer(store, client, clock)
        outbox = Outbox(store, clock, wake=drainer.drain)  # inline: delivered before dispatch returns
        world = make_world(
            policy,
            clock=clock,
            store=store,
            authorizer=Authorizer(SlackGroupDirectory(client, clock, store=store)),
            notifier=SlackNotifier(client, policy, clock, outbox=outbox),
        )
        settings = Settings(SLACK_SIGNING_SECRET=req.SIGNING_SECRET, SLACK_BOT_TOKEN="xoxb-test")
        app = create_app(
            settings, world.service, client, store=store, clock=clock, inline=True, outbox=outbox
        )
        yield SlackWorld(world=world, slack=slack, app=app)
