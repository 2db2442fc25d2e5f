"""The watch after a promotion as people see it in Slack: replies in the deployment's thread, parent kept true."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.slack_client import RetryPolicy, make_web_client
from bot.slack_notifier import SlackNotifier
from tests.support.block_kit import assert_valid_message, text_of
from tests.support.fake_slack import FakeSlack, PostedMessage, RecordedCall
from tests.support.traffic_sim import SoakWorld
from tests.support.watch_sim import Promoted, promoted_world
from tests.support.world import ALIAS, FN


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def promoted_in_slack(slack: FakeSlack) -> Promoted:
    def use_slack(sw: SoakWorld) -> None:
        client = make_web_client(
            "xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _: None)
        )
        sw.world.announcer.notifier = SlackNotifier(client, sw.world.service.ports.policy, sw.world.clock)

    return promoted_world(before_start=use_slack)


def parent(slack: FakeSlack) -> PostedMessage:
    return next(m for m in slack.messages() if m.thread_ts is None)


def replies_since(slack: FakeSlack, count: int) -> list[RecordedCall]:
    return slack.calls("chat.postMessage")[count:]


def is_broadcast(call: RecordedCall) -> bool:
    return call.params.get("reply_broadcast") in (True, "true", "1", 1)


def test_a_clean_watch_reads_as_check_ins_then_the_post_mortem_in_the_thread(slack: FakeSlack) -> None:
    p = promoted_in_slack(slack)
    thread = parent(slack).ts
    assert "👀 watching 24 h, ends Nov 29 15:00 UTC (in 24 h)" in text_of(parent(slack).blocks or [])
    said = len(slack.calls("chat.postMessage"))

    p.periods.hours(24, tick_every=12)

    replies = replies_since(slack, said)
    titles = [text_of(call.params["blocks"]).split("\n", 1)[0] for call in replies]
    assert titles == [
        "*👀 Watch check-in 1/3 · v2 at 100% of production for 6 h*",
        "*👀 Watch check-in 2/3 · v2 at 100% of production for 12 h*",
        "*👀 Watch check-in 3/3 · v2 at 100% of production for 18 h*",
        "*📝 Post-mortem · v2 after 24 h at 100% of production-lego-api:production*",
    ]
    assert all(call.params["thread_ts"] == thread and not is_broadcast(call) for call in replies)
    for call in replies:
        assert_valid_message(call.params["blocks"])
    post_mortem = text_of(replies[-1].params["blocks"])
    assert "✅ Full migration verified: production routes 100% v2, no additional weights" in post_mortem
    assert "- Invocations: 2,880,000 on v2 over 288 periods" in post_mortem
    top = text_of(parent(slack).blocks or [])
    assert "✅ 24 h watch complete" in top and "alias: 100% v2" in top


def test_a_breach_during_the_watch_is_broadcast_to_the_approvers(slack: FakeSlack) -> None:
    p = promoted_in_slack(slack)
    said = len(slack.calls("chat.postMessage"))
    p.periods.hours(1)
    p.sw.sim.behave("2", error_rate=0.02)

    p.periods.run(4)

    [alert] = replies_since(slack, said)
    assert is_broadcast(alert) and alert.params["thread_ts"] == parent(slack).ts
    text = text_of(alert.params["blocks"])
    assert "Error rate 2% > 0.1% for 2 periods" in text
    assert "<!subteam^S0SREONCALL>: go back to v1?" in text
    assert p.sw.world.alias() == ("2", {})


def test_a_post_mortem_that_finds_the_alias_changed_is_broadcast_and_the_parent_flags_it(
    slack: FakeSlack,
) -> None:
    p = promoted_in_slack(slack)
    p.periods.hours(2, tick_every=12)
    p.sw.world.traffic.force_change(FN, ALIAS, "1", {})

    p.periods.hours(22, tick_every=12)

    last = slack.calls("chat.postMessage")[-1]
    assert is_broadcast(last)
    assert "⚠️ production now routes 100% v1, not 100% v2" in text_of(last.params["blocks"])
    assert "⚠️ alias reads 100% v1, which is not what canary-bot set" in text_of(parent(slack).blocks or [])
