"""Every button acts on the deployment and revision it was rendered for, or on nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot import views
from bot.actors import BOT
from bot.model import State
from tests.support.slack_world import APPROVER, APPROVER_2, STARTER, SlackWorld, slack_world
from tests.support.world import FN


@pytest.fixture
def sw() -> Iterator[SlackWorld]:
    with slack_world() as world:
        yield world


def _start(sw: SlackWorld) -> str:
    sw.command(f"start {FN} 2", user=STARTER)
    value = sw.buttons(sw.last_response()["blocks"])[views.ACTION_START_CONFIRM]
    sw.click(views.ACTION_START_CONFIRM, value, user=STARTER)
    return sw.world.service.live(FN).id


def _controls(sw: SlackWorld) -> dict[str, str]:
    """The control buttons as rendered now for the live canary (as on a decision message or App Home)."""
    d = sw.world.service.live(FN)
    choices = ("promote", "extend", "hold", "resume", "rollback")
    return {b.action_id: b.value for b in views.control_buttons(d, choices) if b.action_id and b.value}


def test_hold_from_an_ended_deployments_message_does_not_hold_the_newer_canary(sw: SlackWorld) -> None:
    _start(sw)
    old_hold = _controls(sw)[views.ACTION_HOLD]
    sw.world.service.rollback(FN, None, BOT, reason="soak breach")
    sw.command(f"unlock {FN}", user=APPROVER)  # the rollback locked v2
    newer = _start(sw)
    sw.click(views.ACTION_HOLD, old_hold, user=APPROVER)
    assert sw.last_response()["replace_original"] is False
    assert "rolled" in sw.last_response()["text"]
    assert sw.world.service.get(newer).state is State.CANARY


def test_a_stale_resume_does_not_restart_a_canary_someone_held_again(sw: SlackWorld) -> None:
    _start(sw)
    sw.command(f"hold {FN} --reason first", user=APPROVER)
    stale_resume = _controls(sw)[views.ACTION_RESUME]
    sw.command(f"resume {FN}", user=APPROVER)
    sw.command(f"hold {FN} --reason 'on purpose: db migration'", user=APPROVER_2)
    sw.click(views.ACTION_RESUME, stale_resume, user=APPROVER)
    assert "out of date" in sw.last_response()["text"]
    assert sw.world.service.live(FN).state is State.HELD


def test_extend_uses_the_duration_its_button_carries(sw: SlackWorld) -> None:
    _start(sw)
    d = sw.world.service.live(FN)
    assert d.soak_ends_at is not None
    value = views.button_value(d, by="45m")
    sw.click(views.ACTION_EXTEND, value, user=APPROVER)
    after = sw.world.service.live(FN)
    assert after.soak_ends_at == d.soak_ends_at + timedelta(minutes=45)


def test_an_extend_button_without_a_usable_duration_is_refused(sw: SlackWorld) -> None:
    _start(sw)
    d = sw.world.service.live(FN)
    for by in ("forever", "99999999999d", None):
        value = views.button_value(d) if by is None else views.button_value(d, by=by)
        sw.click(views.ACTION_EXTEND, value, user=APPROVER)
        assert "no usable duration" in sw.last_response()["text"]
    assert sw.world.service.live(FN).soak_ends_at == d.soak_ends_at


def test_a_stale_extend_is_refused(sw: SlackWorld) -> None:
    _start(sw)
    stale = _controls(sw)[views.ACTION_EXTEND]
    sw.command(f"extend {FN} 10m", user=APPROVER)
    ends = sw.world.service.live(FN).soak_ends_at
    sw.click(views.ACTION_EXTEND, stale, user=APPROVER_2)
    assert "out of date" in sw.last_response()["text"]
    assert sw.world.service.live(FN).soak_ends_at == ends


def test_a_stale_hold_is_refused(sw: SlackWorld) -> None:
    _start(sw)
    stale = _controls(sw)[views.ACTION_HOLD]
    sw.command(f"weight {FN} 25%", user=APPROVER)
    sw.click(views.ACTION_HOLD, stale, user=APPROVER_2)
    assert "out of date" in sw.last_response()["text"]
    assert sw.world.service.live(FN).state is State.CANARY
