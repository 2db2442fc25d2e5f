"""App Home clicks, through the real Bolt app and the fake Slack Web API: a click on a Home button (a view, no
response_url) is answered on the clicker's Home, a refusal too; every change re-publishes the Homes people have
open; each viewer sees exactly the buttons they may use."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from bot import views
from canary_demo import slack_requests as req
from tests.support.slack_world import APPROVER, APPROVER_2, OUTSIDER, STARTER, SlackWorld, slack_world
from tests.support.world import FN


@pytest.fixture
def sw() -> Iterator[SlackWorld]:
    with slack_world() as world:
        yield world


def _start(sw: SlackWorld) -> None:
    sw.command(f"start {FN} 2", user=STARTER)
    buttons = sw.buttons(sw.last_response()["blocks"])
    sw.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)
    assert sw.world.alias() == ("1", {"2": 0.05})


def _open_home(sw: SlackWorld, user: str) -> dict[str, Any]:
    assert sw.dispatch(req.app_home_opened(user)).status == 200
    view = sw.slack.home_view(user)
    assert view is not None
    return view


def _home_click(sw: SlackWorld, user: str, action_id: str, value: str) -> int:
    """A button on the App Home, as Slack sends it: the container is the view; there is no response_url."""
    home = sw.slack.home_view(user) or {}
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": req.TEAM_ID},
        "api_app_id": req.APP_ID,
        "token": "legacy-verification-token",
        "container": {"type": "view", "view_id": home.get("id", "V0HOME")},
        "trigger_id": "1111.2222.trigger",
        "team": {"id": req.TEAM_ID, "domain": "fake-workspace"},
        "is_enterprise_install": False,
        "view": {**home, "type": "home", "id": home.get("id", "V0HOME")},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "actions",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)})
    signed = req.sign(body, content_type="application/x-www-form-urlencoded")
    return sw.dispatch(signed).status


def _texts(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def test_each_viewer_sees_exactly_the_buttons_they_may_use(sw: SlackWorld) -> None:
    _start(sw)
    # The starter is in the approver group too: Roll back, Hold and Extend, but never Promote (two-person rule).
    starter = sw.buttons(_open_home(sw, STARTER)["blocks"])
    assert {views.ACTION_ROLLBACK, views.ACTION_HOLD, views.ACTION_EXTEND} <= starter.keys()
    assert views.ACTION_PROMOTE not in starter
    approver = sw.buttons(_open_home(sw, APPROVER)["blocks"])
    assert {views.ACTION_PROMOTE, views.ACTION_ROLLBACK, views.ACTION_HOLD} <= approver.keys()
    assert sw.buttons(_open_home(sw, OUTSIDER)["blocks"]) == {}


def test_a_promote_click_on_the_home_acts_answers_the_clicker_there_and_refreshes_every_open_home(
    sw: SlackWorld,
) -> None:
    _start(sw)
    _open_home(sw, STARTER)
    approver = sw.buttons(_open_home(sw, APPROVER)["blocks"])

    assert _home_click(sw, APPROVER, views.ACTION_PROMOTE, approver[views.ACTION_PROMOTE]) == 200
    assert sw.world.alias() == ("2", {})
    clicker = sw.slack.home_view(APPROVER)
    assert clicker is not None and "Promoted" in _texts(clicker)
    assert sw.buttons(clicker["blocks"]) == {}, "the promoted canary left the Home: no buttons for it"
    starter = sw.slack.home_view(STARTER)
    assert starter is not None and sw.buttons(starter["blocks"]) == {}, "the starter's Home was refreshed too"
    # The change is announced in the deployment's thread like any other.
    assert any("Promoted" in json.dumps(c.params) for c in sw.slack.calls("chat.postMessage"))


def test_a_refused_home_click_is_answered_on_the_home_and_changes_nothing(sw: SlackWorld) -> None:
    _start(sw)
    approver = sw.buttons(_open_home(sw, APPROVER)["blocks"])
    _open_home(sw, STARTER)
    # The starter forges the approver's Promote: refused by the two-person rule, said on their Home.
    assert _home_click(sw, STARTER, views.ACTION_PROMOTE, approver[views.ACTION_PROMOTE]) == 200
    assert sw.world.alias() == ("1", {"2": 0.05})
    starter = sw.slack.home_view(STARTER)
    assert starter is not None and "two-person rule" in _texts(starter)
    # An outsider's click is refused the same way.
    _open_home(sw, OUTSIDER)
    assert _home_click(sw, OUTSIDER, views.ACTION_HOLD, approver[views.ACTION_HOLD]) == 200
    outsider = sw.slack.home_view(OUTSIDER)
    assert outsider is not None and "not an approver" in _texts(outsider)
    assert sw.world.alias() == ("1", {"2": 0.05})


def test_a_change_from_the_channel_refreshes_open_homes_so_no_stale_buttons_stay(sw: SlackWorld) -> None:
    _start(sw)
    before = sw.buttons(_open_home(sw, APPROVER_2)["blocks"])
    assert views.ACTION_HOLD in before
    sw.command(f"hold {FN}", user=APPROVER)
    after = sw.buttons((sw.slack.home_view(APPROVER_2) or {})["blocks"])
    assert views.ACTION_HOLD not in after and views.ACTION_RESUME in after


def test_a_home_rollback_asks_the_reason_and_answers_on_the_home(sw: SlackWorld) -> None:
    _start(sw)
    starter = sw.buttons(_open_home(sw, STARTER)["blocks"])
    assert _home_click(sw, STARTER, views.ACTION_ROLLBACK, starter[views.ACTION_ROLLBACK]) == 200
    opened = sw.slack.calls("views.open")[-1].params["view"]
    submitted = req.view_submission(
        views.CALLBACK_ROLLBACK_REASON,
        req.plain_text_values({(views.BLOCK_ROLLBACK_REASON, views.INPUT_ROLLBACK_REASON): "cache misses"}),
        private_metadata=opened.get("private_metadata", ""),
        user_id=STARTER,
        user_name="ustarter",
    )
    assert sw.dispatch(submitted).status == 200
    assert sw.world.alias() == ("1", {})
    home = sw.slack.home_view(STARTER)
    assert home is not None and "Rolled back" in _texts(home) and sw.buttons(home["blocks"]) == {}


def test_a_slow_slack_never_delays_the_change_that_refreshes_the_homes() -> None:
    """Home refreshes run on their own thread: the service's announcement returns at once."""
    import threading

    from bot.events import RecordingNotifier, StateNoted
    from bot.model import State
    from commands.base import Deps
    from handlers.home import HomeBoard
    from tests.support.canary_core import T0, in_state
    from tests.support.world import make_world

    release, published = threading.Event(), threading.Event()

    class SlowSlack:
        def views_publish(self, **_: Any) -> None:
            release.wait(5)
            published.set()

    world = make_world()
    deps = Deps(service=world.service, clock=world.clock, store=world.store)
    board = HomeBoard(SlowSlack(), deps)  # type: ignore[arg-type]
    board.seen("U0VIEWER")
    world.announcer.notifier = RecordingNotifier()
    world.announcer.observe(board.on_announced)
    started = time.monotonic()
    world.announcer.announce(
        StateNoted(deployment=in_state(State.HELD), at=T0, actor="canary-bot", what="held")
    )
    assert time.monotonic() - started < 0.5
    assert not published.is_set()
    release.set()
    assert published.wait(5), "the Home was re-published in the background"
