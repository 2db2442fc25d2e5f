"""What people read says what happened in their words: no internal state or action names, no doubled labels,
weights that are not 0% or 100% never read as such."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot import views
from bot.units import format_percent
from tests.support.slack_world import APPROVER, STARTER, SlackWorld, slack_world
from tests.support.world import FN


@pytest.mark.parametrize(
    ("fraction", "shown"),
    [
        (0.9999995, "99.99995%"),
        (0.999, "99.9%"),
        (5e-7, "0.00005%"),
        (0.0004, "0.04%"),
        (1.0, "100%"),
        (0.0, "0%"),
        (0.05, "5%"),
    ],
)
def test_weights_near_0_or_100_percent_are_shown_precisely(fraction: float, shown: str) -> None:
    assert format_percent(fraction) == shown


@pytest.fixture
def sw() -> Iterator[SlackWorld]:
    with slack_world() as world:
        yield world


def _start(sw: SlackWorld) -> None:
    sw.command(f"start {FN} 2", user=STARTER)
    buttons = sw.buttons(sw.last_response()["blocks"])
    sw.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)


def test_a_late_click_is_told_who_acted_in_plain_words(sw: SlackWorld) -> None:
    _start(sw)
    sw.command(f"rollback {FN} --reason cache", user=APPROVER)
    rollback = sw.buttons(sw.last_response()["blocks"])[views.ACTION_ROLLBACK]
    sw.click(views.ACTION_ROLLBACK, rollback, user=APPROVER)
    sw.click(views.ACTION_ROLLBACK, rollback, user=APPROVER)  # again: the deployment has ended
    text = sw.last_response()["text"]
    assert f"{FN}:production was rolled back by <@{APPROVER}> at" in text
    for internal in ("rolled_back", "finish_rollback", "slack:U"):
        assert internal not in text


def test_click_outcomes_say_each_thing_once(sw: SlackWorld) -> None:
    _start(sw)
    sw.command(f"promote {FN}", user=APPROVER)
    promote = sw.buttons(sw.last_response()["blocks"])[views.ACTION_PROMOTE]
    sw.click(views.ACTION_PROMOTE, promote, user=APPROVER)
    text = sw.last_response()["text"]
    assert text.startswith(f"✅ Promoted by <@{APPROVER}> at ")
    assert text.endswith(f": {FN}:production now 100% v2") and "promoted:" not in text


def test_extend_says_when_the_soak_now_ends_and_by_how_much_once(sw: SlackWorld) -> None:
    _start(sw)
    sw.command(f"extend {FN} 30m", user=APPROVER)
    text = sw.last_response()["text"]
    assert "now ends at " in text and "ends to" not in text
    note = json.dumps(sw.slack.calls("chat.postMessage")[-1].params, ensure_ascii=False)
    assert "Soak extended by <@UAPPROVER1>: +30m" in note and "soak extended by" not in note
