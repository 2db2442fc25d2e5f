"""People are their Slack user ID: a different name on the same ID is the same person, for every rule."""

from __future__ import annotations

from bot import views
from bot.actors import Actor, person_key
from bot.model import State
from bot.verbs import StartArgs
from tests.support import slack_requests as req
from tests.support.slack_world import APPROVER, STARTER, slack_world
from tests.support.world import FN, make_world, slack_user


def test_person_key_drops_the_name_from_a_slack_label() -> None:
    assert person_key("slack:U123 (maria)") == "slack:U123"
    assert person_key("slack:U123 (someone else)") == "slack:U123"
    assert person_key("cli:root") == "cli:root"
    assert Actor(id="U123", name="a", source="slack").key == Actor(id="U123", name="b", source="slack").key


def test_the_starter_under_another_username_still_cannot_promote_their_own_canary() -> None:
    with slack_world() as sw:
        sw.dispatch(
            req.slash_command(
                text=f"start {FN} 2",
                user_id=STARTER,
                user_name="maria",
                response_url=sw.slack.response_url("start"),
            )
        )
        start = sw.buttons(sw.last_response()["blocks"])[views.ACTION_START_CONFIRM]
        sw.click(views.ACTION_START_CONFIRM, start, user=STARTER)
        sw.command(f"promote {FN}", user=APPROVER)
        promote = sw.buttons(sw.last_response()["blocks"])[views.ACTION_PROMOTE]
        sw.dispatch(
            req.block_actions(
                views.ACTION_PROMOTE,
                promote,
                user_id=STARTER,
                user_name="maria-renamed",
                response_url=sw.slack.response_url("promote"),
            )
        )
        assert "two-person rule" in sw.last_response()["text"]
        assert sw.world.alias() == ("1", {"2": 0.05})


def test_the_starter_may_roll_back_their_own_canary_under_another_username() -> None:
    world = make_world()
    world.start(slack_user(STARTER, "maria"))
    # The starter is not an approver of this policy's group here: only "starter" lets them roll back.
    world.groups.groups["S0SREONCALL"].discard(STARTER)
    world.service.rollback(FN, None, slack_user(STARTER, "maria-renamed"), reason="mine, going back")
    assert world.alias() == ("1", {})


def test_a_new_plan_by_the_same_user_id_replaces_their_own_pending_plan() -> None:
    world = make_world()
    first = world.service.plan(StartArgs(function=FN, version="2"), slack_user(STARTER, "maria"))
    second = world.service.plan(StartArgs(function=FN, version="2"), slack_user(STARTER, "maria-renamed"))
    assert world.service.get(first.deployment.id).state is State.CANCELLED
    assert world.service.get(second.deployment.id).state is State.PLANNED
