"""A signed request replayed inside the signature window is acted on once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot import views
from bot.http_server import make_wsgi_app
from tests.support import slack_requests as req
from tests.support.slack_world import APPROVER, STARTER, SlackWorld, slack_world
from tests.support.world import FN
from tests.test_http_server import signed


@pytest.fixture
def sw() -> Iterator[SlackWorld]:
    with slack_world() as world:
        sw_ = world
        sw_.command(f"start {FN} 2", user=STARTER)
        start = sw_.buttons(sw_.last_response()["blocks"])[views.ACTION_START_CONFIRM]
        sw_.click(views.ACTION_START_CONFIRM, start, user=STARTER)
        yield sw_


def test_a_replayed_extend_extends_once_and_the_replay_is_told(sw: SlackWorld) -> None:
    ends = sw.world.service.live(FN).soak_ends_at
    assert ends is not None
    wsgi = make_wsgi_app(sw.app, sns_handler=None, health=lambda: (True, {}))
    request = req.slash_command(
        text=f"extend {FN} 30m", user_id=APPROVER, user_name="a", response_url=sw.slack.response_url("x")
    )
    first = signed(wsgi, "/slack/events", request)
    replay = signed(wsgi, "/slack/events", request)
    assert first.status == replay.status == 200
    assert "replay" in replay.body.decode()
    assert sw.world.service.live(FN).soak_ends_at == ends + timedelta(minutes=30)


def test_a_replayed_click_is_not_run_again(sw: SlackWorld) -> None:
    d = sw.world.service.live(FN)
    request = req.block_actions(
        views.ACTION_HOLD, views.button_value(d), user_id=APPROVER, response_url=sw.slack.response_url("h")
    )
    sw.dispatch(request)
    audit, answers = len(sw.world.store.audit_for(d.id)), len(sw.responses())
    assert sw.dispatch(request).status == 200
    assert len(sw.world.store.audit_for(d.id)) == audit
    assert len(sw.responses()) == answers  # not even a refusal: the listener never ran


def test_two_separate_requests_with_the_same_words_both_run(sw: SlackWorld) -> None:
    ends = sw.world.service.live(FN).soak_ends_at
    assert ends is not None
    for url in ("one", "two"):
        sw.dispatch(
            req.slash_command(
                text=f"extend {FN} 30m", user_id=APPROVER, response_url=sw.slack.response_url(url)
            )
        )
    assert sw.world.service.live(FN).soak_ends_at == ends + timedelta(minutes=60)


def test_a_retried_event_is_handled_once(sw: SlackWorld) -> None:
    first = req.app_home_opened(APPROVER)
    sw.dispatch(first)
    assert len(sw.slack.calls("views.publish")) == 1
    # Slack's retry: the same event (same event_id), signed again a moment later, with X-Slack-Retry-Num.
    ts = int(first.headers["x-slack-request-timestamp"]) + 2
    retry = req.sign(first.body, content_type="application/json", timestamp=ts)
    retry.headers.update({"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"})
    assert sw.dispatch(retry).status == 200
    assert len(sw.slack.calls("views.publish")) == 1
