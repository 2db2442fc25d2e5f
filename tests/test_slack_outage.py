"""Safety without Slack: a bot (re)started while Slack's Web API is down still takes a rollback click."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot import views
from bot.actors import Authorizer
from bot.app import create_app
from bot.config import Settings
from bot.service import CanaryService
from bot.slack_client import RetryPolicy, make_web_client
from bot.slack_groups import SlackGroupDirectory
from tests.support import slack_requests as req
from tests.support.slack_world import APPROVER, GROUP, STARTER, SlackWorld, slack_world
from tests.support.world import FN

DOWN = ("auth.test", "usergroups.users.list", "chat.postMessage", "chat.update", "response_url")


@pytest.fixture
def sw() -> Iterator[SlackWorld]:
    with slack_world() as world:
        yield world


def _start(sw: SlackWorld) -> None:
    sw.command(f"start {FN} 2", user=STARTER)
    buttons = sw.buttons(sw.last_response()["blocks"])
    sw.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)
    assert sw.world.alias() == ("1", {"2": 0.05})


def _restart_while_slack_is_down(sw: SlackWorld) -> None:
    """A new process on the same store (empty caches) while every Web API call answers 500."""
    for method in DOWN:
        sw.slack.fail_next(method, status=500, times=1000)
    client = make_web_client(
        "xoxb-test", base_url=sw.slack.base_url, retry=RetryPolicy(sleep=lambda _s: None)
    )
    world = sw.world
    world.service = CanaryService(
        traffic=world.traffic,
        store=world.store,
        policy=world.service.ports.policy,
        clock=world.clock,
        notifier=world.announcer.notifier,
        authorizer=Authorizer(SlackGroupDirectory(client, world.clock, store=world.store)),
    )
    settings = Settings(SLACK_SIGNING_SECRET=req.SIGNING_SECRET, SLACK_BOT_TOKEN="xoxb-test")
    sw.app = create_app(settings, world.service, client, store=world.store, clock=world.clock, inline=True)


def test_a_rollback_click_after_a_restart_during_a_slack_outage_reverts_the_alias(sw: SlackWorld) -> None:
    _start(sw)
    sw.command(f"extend {FN} 10m", user=APPROVER)  # an approver acts once: the group's members are seen
    assert sw.world.store.group_members(GROUP) is not None
    sw.command(f'rollback {FN} --reason "errors up"', user=APPROVER)
    button = sw.buttons(sw.last_response()["blocks"])[views.ACTION_ROLLBACK]
    _restart_while_slack_is_down(sw)

    response = sw.click(views.ACTION_ROLLBACK, button, user=APPROVER)

    assert response.status == 200
    assert sw.world.alias() == ("1", {})
    assert not sw.slack.calls("auth.test")  # never on the request path


def test_a_group_never_seen_while_slack_is_down_grants_nothing(sw: SlackWorld) -> None:
    _start(sw)
    sw.command(f'rollback {FN} --reason "errors up"', user=STARTER)  # the starter: no group lookup needed
    button = sw.buttons(sw.last_response()["blocks"])[views.ACTION_ROLLBACK]
    _restart_while_slack_is_down(sw)
    assert sw.world.store.group_members(GROUP) is None

    sw.click(views.ACTION_ROLLBACK, button, user="UNOBODY")

    assert sw.world.alias() == ("1", {"2": 0.05})
