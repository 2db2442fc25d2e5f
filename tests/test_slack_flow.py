"""The Slack surface end to end: signed requests through app.dispatch, the fake Slack Web API, the fake Lambda."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from slack_bolt.request import BoltRequest

from bot import views
from bot.app import create_app
from bot.config import Settings
from bot.model import State
from tests.support import slack_requests as req
from tests.support.slack_world import APPROVER, APPROVER_2, OUTSIDER, STARTER, SlackWorld, slack_world
from tests.support.world import FN


@pytest.fixture
def sw() -> Iterator[SlackWorld]:
    with slack_world() as world:
        yield world


def _start(sw: SlackWorld, text: str = f"start {FN} 2") -> dict[str, str]:
    response = sw.command(text, user=STARTER)
    assert response.status == 200
    preview = sw.last_response()
    buttons = sw.buttons(preview["blocks"])
    sw.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)
    assert sw.world.alias() == ("1", {"2": 0.05})
    return buttons


def _prompt(sw: SlackWorld, text: str, user: str = APPROVER) -> dict[str, str]:
    sw.command(text, user=user)
    return sw.buttons(sw.last_response()["blocks"])


def test_start_shows_an_ephemeral_preview_and_leaves_the_alias_alone(sw: SlackWorld) -> None:
    response = sw.command(f"start {FN} 2", user=STARTER)
    assert response.status == 200
    preview = sw.last_response()
    assert preview["response_type"] == "ephemeral"
    text = sw.text_of(preview)
    assert "100% v1" in text and "95% v1 · 5% v2" in text
    assert set(sw.buttons(preview["blocks"])) >= {views.ACTION_START_CONFIRM, views.ACTION_START_CANCEL}
    assert sw.world.alias() == ("1", {})


def test_start_button_routes_traffic_and_posts_the_parent_message_in_the_channel(sw: SlackWorld) -> None:
    _start(sw)
    outcome = sw.last_response()
    assert outcome["replace_original"] is True
    assert "Canary started by <@USTARTER>" in outcome["text"]
    parents = [m for m in sw.slack.messages() if m.thread_ts is None]
    assert len(parents) == 1 and parents[0].channel == req.CHANNEL_ID
    d = sw.world.service.live(FN)
    assert d.thread_ts == parents[0].ts


def test_cancel_button_cancels_the_plan_without_touching_the_alias(sw: SlackWorld) -> None:
    sw.command(f"start {FN} 2", user=STARTER)
    buttons = sw.buttons(sw.last_response()["blocks"])
    sw.click(views.ACTION_START_CANCEL, buttons[views.ACTION_START_CANCEL], user=STARTER)
    assert sw.world.alias() == ("1", {})
    assert sw.world.store.list_live() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", "unknown verb 'frobnicate'"),
        (f"start {FN} 2 --weight 150%", "between 0% and 100%"),
        ("start", "missing function"),
        (f"rollback {FN} --reason", "expected one argument"),
    ],
)
def test_bad_input_is_answered_in_the_ack_with_the_usage_line(
    sw: SlackWorld, text: str, expected: str
) -> None:
    response = sw.command(text)
    assert response.status == 200
    assert expected in response.body
    assert "Usage: `" in response.body and "Usage: `usage:" not in response.body
    assert sw.slack.calls("response_url") == []
    assert sw.world.alias() == ("1", {})


def test_refusals_from_the_service_are_ephemeral_and_specific(sw: SlackWorld) -> None:
    sw.command(f"promote {FN}")
    answer = sw.last_response()
    assert answer["response_type"] == "ephemeral"
    assert "no live canary" in answer["text"]
    sw.command("start not-in-policy 2")
    answer = sw.last_response()
    assert "not listed in the canary policy" in answer["text"]
    assert "Usage: `start" in sw.text_of(answer)


def test_promote_button_is_refused_for_a_non_approver(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"promote {FN}")
    sw.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=OUTSIDER)
    answer = sw.last_response()
    assert "not an approver" in answer["text"] and answer["replace_original"] is False
    assert sw.world.alias() == ("1", {"2": 0.05})


def test_the_starter_cannot_promote_their_own_canary_under_the_two_person_rule(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"promote {FN}", user=STARTER)
    sw.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=STARTER)
    assert "two-person rule" in sw.last_response()["text"]
    assert sw.world.alias() == ("1", {"2": 0.05})
    sw.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=APPROVER)
    assert sw.world.alias() == ("2", {})
    outcome = sw.last_response()
    assert outcome["replace_original"] is True and "Promoted by <@UAPPROVER1>" in outcome["text"]


def test_a_click_from_a_channel_not_allowed_is_refused(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"promote {FN}")
    sw.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=APPROVER, channel_id="C0RANDOM")
    assert "not this channel" in sw.last_response()["text"]
    assert sw.world.alias() == ("1", {"2": 0.05})


def test_a_click_on_a_stale_message_is_refused_saying_what_changed(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"promote {FN}")
    sw.command(f"extend {FN} 30m", user=APPROVER)
    sw.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=APPROVER_2)
    answer = sw.last_response()["text"]
    assert "out of date" in answer and "extend" in answer
    assert sw.world.alias() == ("1", {"2": 0.05})


def test_a_click_after_the_alias_changed_outside_the_bot_is_refused_and_holds(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"promote {FN}")
    sw.world.traffic.force_change(FN, "production", "1", {"2": 0.3})
    sw.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=APPROVER)
    assert "changed outside canary-bot" in sw.last_response()["text"]
    assert sw.world.alias() == ("1", {"2": 0.3})
    assert sw.world.service.live(FN).state is State.HELD


def test_ten_concurrent_clicks_give_one_alias_change_and_the_others_are_told(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"promote {FN}")
    writes = len(sw.world.traffic.routing_writes)
    seen = len(sw.responses())
    barrier = threading.Barrier(10)

    def click() -> None:
        barrier.wait()
        sw.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=APPROVER)

    threads = [threading.Thread(target=click) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sw.world.traffic.routing_writes) - writes == 1
    answers = sw.responses()[seen:]
    promoted = [a for a in answers if a.get("replace_original") is True]
    refused = [a for a in answers if a.get("replace_original") is False]
    assert len(promoted) == 1 and "Promoted by" in promoted[0]["text"]
    assert len(refused) == 9
    assert all("promote" in a["text"] or "in progress" in a["text"] for a in refused), [
        a["text"] for a in refused
    ]


def test_rollback_with_a_reason_asks_with_a_danger_confirm_then_reverts_and_posts_comms(
    sw: SlackWorld,
) -> None:
    _start(sw)
    sw.command(f'rollback {FN} --reason "cache hit 61%"', user=APPROVER)
    prompt = sw.last_response()
    rollback_button = next(
        e
        for b in prompt["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == views.ACTION_ROLLBACK
    )
    assert rollback_button["style"] == "danger" and "confirm" in rollback_button
    sw.click(views.ACTION_ROLLBACK, rollback_button["value"], user=APPROVER)
    assert sw.world.alias() == ("1", {})
    thread = [m for m in sw.slack.messages() if m.thread_ts]
    posted = " ".join(str(m.blocks) + (m.text or "") for m in thread)
    assert "ROLLBACK INITIATED" in posted and "cache hit 61%" in posted
    assert "Investigating" in posted  # status-page text


def test_rollback_without_a_reason_opens_a_modal_and_the_submission_rolls_back(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"rollback {FN}")
    sw.click(views.ACTION_ROLLBACK, buttons[views.ACTION_ROLLBACK], user=APPROVER)
    opened = sw.slack.calls("views.open")
    assert len(opened) == 1 and sw.world.alias() == ("1", {"2": 0.05})
    view = opened[0].params["view"]
    submit = req.view_submission(
        views.CALLBACK_ROLLBACK_REASON,
        req.plain_text_values({(views.BLOCK_ROLLBACK_REASON, views.INPUT_ROLLBACK_REASON): "p99 430 ms"}),
        private_metadata=view["private_metadata"],
        user_id=APPROVER,
    )
    response = sw.dispatch(submit)
    assert response.status == 200
    assert sw.world.alias() == ("1", {})
    assert sw.world.service.history(FN)[0].deployment.reason == "p99 430 ms"


def test_an_empty_modal_reason_is_refused_in_the_form(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"rollback {FN}")
    sw.click(views.ACTION_ROLLBACK, buttons[views.ACTION_ROLLBACK], user=APPROVER)
    view = sw.slack.calls("views.open")[0].params["view"]
    response = sw.dispatch(
        req.view_submission(
            views.CALLBACK_ROLLBACK_REASON,
            req.plain_text_values({(views.BLOCK_ROLLBACK_REASON, views.INPUT_ROLLBACK_REASON): "  "}),
            private_metadata=view["private_metadata"],
            user_id=APPROVER,
        )
    )
    assert "errors" in response.body
    assert sw.world.alias() == ("1", {"2": 0.05})


def test_a_non_approver_gets_no_modal_for_rollback(sw: SlackWorld) -> None:
    _start(sw)
    buttons = _prompt(sw, f"rollback {FN}")
    sw.click(views.ACTION_ROLLBACK, buttons[views.ACTION_ROLLBACK], user=OUTSIDER)
    assert sw.slack.calls("views.open") == []
    assert "not an approver" in sw.last_response()["text"]


def test_app_home_lists_active_canaries_with_only_the_viewers_actions(sw: SlackWorld) -> None:
    _start(sw)
    sw.dispatch(req.app_home_opened(APPROVER))
    approver_view = sw.slack.home_view(APPROVER)
    assert approver_view is not None
    assert views.ACTION_PROMOTE in sw.buttons(approver_view["blocks"])
    sw.dispatch(req.app_home_opened(OUTSIDER))
    outsider_view = sw.slack.home_view(OUTSIDER)
    assert outsider_view is not None and FN in sw.text_of(outsider_view)
    assert views.ACTION_PROMOTE not in sw.buttons(outsider_view["blocks"])


def test_status_and_history_answer_ephemerally(sw: SlackWorld) -> None:
    _start(sw)
    sw.command("status")
    status = sw.last_response()
    assert status["response_type"] == "ephemeral" and FN in sw.text_of(status)
    sw.command(f"history {FN}")
    assert FN in sw.text_of(sw.last_response())


def test_mid_flight_controls_change_traffic_for_approvers(sw: SlackWorld) -> None:
    _start(sw)
    sw.command(f"weight {FN} 25%", user=APPROVER)
    assert sw.world.alias() == ("1", {"2": 0.25})
    sw.command(f"hold {FN}", user=APPROVER)
    assert sw.world.service.live(FN).state is State.HELD
    sw.command(f"resume {FN}", user=APPROVER)
    assert sw.world.service.live(FN).state is State.CANARY
    sw.command(f"weight {FN} 50%", user=OUTSIDER)
    assert "not an approver" in sw.last_response()["text"]
    assert sw.world.alias() == ("1", {"2": 0.25})


def test_slack_errors_never_block_or_undo_the_aws_action(sw: SlackWorld) -> None:
    sw.command(f"start {FN} 2", user=STARTER)
    buttons = sw.buttons(sw.last_response()["blocks"])
    sw.slack.fail_next("chat.postMessage", status=500, times=20)
    sw.slack.fail_next("chat.update", status=429, retry_after=0, times=20)
    sw.click(views.ACTION_START_CONFIRM, buttons[views.ACTION_START_CONFIRM], user=STARTER)
    assert sw.world.alias() == ("1", {"2": 0.05})
    assert sw.world.service.live(FN).state is State.CANARY


def test_a_bad_signature_or_an_old_timestamp_is_rejected_with_401(sw: SlackWorld) -> None:
    bad = req.slash_command(text=f"start {FN} 2", secret="wrong-secret")
    assert sw.dispatch(bad).status == 401
    old = req.slash_command(text=f"start {FN} 2", timestamp=int(time.time()) - 301)
    assert sw.dispatch(old).status == 401
    assert sw.world.store.list_live() == []


def test_the_ack_comes_before_any_aws_call() -> None:
    """With listeners on worker threads (production mode), the ack returns while AWS is still blocked."""
    with slack_world() as sw:
        app = create_app(
            Settings(SLACK_SIGNING_SECRET=req.SIGNING_SECRET),
            sw.world.service,
            sw.app.client,
            store=sw.world.store,
            clock=sw.world.clock,
        )
        release = threading.Event()
        real_get_alias = sw.world.traffic.get_alias

        def slow_get_alias(*args: Any, **kwargs: Any) -> Any:
            release.wait(5)
            return real_get_alias(*args, **kwargs)

        sw.world.traffic.get_alias = slow_get_alias  # type: ignore[method-assign]
        signed = req.slash_command(text=f"start {FN} 2", response_url=sw.slack.response_url("slow"))
        began = time.monotonic()
        response = app.dispatch(BoltRequest(body=signed.body, headers=dict(signed.headers)))
        elapsed = time.monotonic() - began
        assert response.status == 200
        assert elapsed < 1.0
        assert sw.slack.calls("response_url") == []
        release.set()
        sw.slack.wait_for("response_url", timeout=5)


def test_parent_message_is_updated_in_place_as_the_state_changes(sw: SlackWorld) -> None:
    _start(sw)
    sw.world.clock.advance(timedelta(minutes=5))
    buttons = _prompt(sw, f"promote {FN}")
    sw.click(views.ACTION_PROMOTE, buttons[views.ACTION_PROMOTE], user=APPROVER)
    parent = next(m for m in sw.slack.messages() if m.thread_ts is None)
    assert parent.updates >= 1
    assert "promoted" in sw.text_of({"b": parent.blocks}).lower()
