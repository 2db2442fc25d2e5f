"""SlackNotifier against the fake Slack Web API: a thread per deployment, broadcast when people must act."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

import pytest
from slack_sdk.errors import SlackApiError

from bot.clock import ManualClock
from bot.config import Policy
from bot.events import (
    AlarmAlert,
    DecisionNeeded,
    MessageRef,
    SoakReport,
    Started,
    StateNoted,
    TrafficChanged,
)
from bot.judge import judge_period
from bot.model import AliasState, Deployment, State, Thresholds
from bot.slack_client import RetryPolicy, make_web_client
from bot.slack_notifier import SlackNotifier
from tests.support.block_kit import assert_valid_message, text_of
from tests.support.canary_core import PERIOD, T0, in_state, period
from tests.support.fake_slack import FakeSlack, RecordedCall

NOW = T0 + timedelta(minutes=32)
FUNCTION = "production-lego-api"
POLICY = Policy.model_validate(
    {
        "functions": {
            FUNCTION: {"channel": "#deploys", "approvers": ["S0SRE"], "service_name": "LEGO API"},
            "quiet-fn": {},
        }
    }
)
BEFORE = AliasState(function=FUNCTION, alias="production", version="41", revision_id="r1")
SPLIT = AliasState(
    function=FUNCTION, alias="production", version="41", weights={"42": 0.05}, revision_id="r2"
)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def notifier(slack: FakeSlack, sleeps: list[float]) -> SlackNotifier:
    client = make_web_client(
        "xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=sleeps.append, jitter=lambda: 0.0)
    )
    return SlackNotifier(
        client, POLICY, ManualClock(NOW), dashboard_url=lambda d: f"https://dash.example/{d.id}"
    )


def deployment(state: State = State.CANARY, **update: Any) -> Deployment:
    base = in_state(state, steps=(0.05,)).model_copy(
        update={"channel": "#deploys", "created_by": "cli:maria"}
    )
    return base.model_copy(update=update)


def start(notifier: SlackNotifier, d: Deployment | None = None) -> tuple[Deployment, MessageRef]:
    """Announce a canary; return it as the service saves it afterwards (channel ID and thread)."""
    d = d or deployment()
    ref = notifier.publish(
        Started(deployment=d, at=NOW, actor="cli:maria", alias_before=BEFORE, alias_after=SPLIT)
    )
    assert ref is not None
    return d.model_copy(update={"channel": ref.channel, "thread_ts": ref.ts}), ref


def soak_report(d: Deployment, chart: bytes | None = None) -> SoakReport:
    figures = [period(T0 + PERIOD * i) for i in range(6)]
    verdicts = [judge_period(f, Thresholds(), min_invocations=200) for f in figures]
    return SoakReport(
        deployment=d,
        at=NOW,
        actor="canary-bot",
        number=2,
        total=4,
        figures=figures,
        verdicts=verdicts,
        chart_png=chart,
    )


def broadcast(call: RecordedCall) -> bool:
    return call.params.get("reply_broadcast") in (True, "true", "1", 1)


def last_post(slack: FakeSlack) -> RecordedCall:
    return slack.calls("chat.postMessage")[-1]


# ---------------------------------------------------------------- the parent
def test_started_posts_the_parent_in_the_policy_channel_and_returns_it(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    _, ref = start(notifier, deployment(channel=None))
    (parent,) = slack.messages()
    assert ref == MessageRef(channel=slack.channel_id("#deploys"), ts=parent.ts)
    assert parent.thread_ts is None
    assert parent.blocks is not None
    assert_valid_message(parent.blocks)
    text = text_of(parent.blocks)
    assert "🐤 production-lego-api:production — canary v42 at 5% · soaking" in text
    assert "<https://dash.example/d-1|dashboard>" in text
    assert parent.text and "canary v42 at 5%" in parent.text


def test_started_without_any_channel_is_not_announced(notifier: SlackNotifier, slack: FakeSlack) -> None:
    quiet = deployment(function="quiet-fn", channel=None)
    assert (
        notifier.publish(Started(deployment=quiet, at=NOW, actor="x", alias_before=BEFORE, alias_after=SPLIT))
        is None
    )
    assert slack.calls() == []


# ---------------------------------------------------------------- the thread
def test_soak_report_goes_in_the_thread_updates_the_parent_and_is_not_broadcast(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    d, ref = start(notifier)
    reply = notifier.publish(soak_report(d))
    assert reply is not None and reply.ts != ref.ts
    call = last_post(slack)
    assert call.params["thread_ts"] == ref.ts and not broadcast(call)
    assert "Soak report 2/4" in text_of(call.params["blocks"])
    parent = next(m for m in slack.messages() if m.ts == ref.ts)
    assert parent.updates == 1
    assert "last check 14:30 UTC ✅ all within thresholds" in text_of(parent.blocks or [])


def test_soak_chart_is_uploaded_into_the_thread(notifier: SlackNotifier, slack: FakeSlack) -> None:
    d, ref = start(notifier)
    png = b"\x89PNG\r\n\x1a\n" + b"chart" * 50
    notifier.publish(soak_report(d, chart=png))
    (upload,) = slack.uploaded_files()
    assert (upload.channel, upload.thread_ts) == (ref.channel, ref.ts)
    assert upload.filename == "soak-d-1-2.png"
    assert upload.content == png


def test_approval_wanted_is_broadcast_and_mentions_the_approvers(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    d, ref = start(notifier)
    waiting = d.model_copy(
        update={"state": State.AWAITING_APPROVAL, "approval_deadline": NOW + timedelta(minutes=30)}
    )
    notifier.publish(
        DecisionNeeded(
            deployment=waiting,
            at=NOW,
            actor="canary-bot",
            why="approval",
            reason="soak passed",
            approvers=("S0SRE",),
            deadline=NOW + timedelta(minutes=30),
        )
    )
    call = last_post(slack)
    assert call.params["thread_ts"] == ref.ts and broadcast(call)
    assert "<!subteam^S0SRE>: promote v42 to 100%?" in text_of(call.params["blocks"])
    parent = next(m for m in slack.messages() if m.ts == ref.ts)
    assert "awaiting approval" in text_of(parent.blocks or [])


def test_rollback_is_broadcast_and_the_parent_shows_it(notifier: SlackNotifier, slack: FakeSlack) -> None:
    d, ref = start(notifier)
    rolled = d.model_copy(
        update={
            "state": State.ROLLED_BACK,
            "ended_by": "canary-bot",
            "ended_at": NOW,
            "reason": "error rate 2.5% > 0.1%",
        }
    )
    notifier.publish(
        TrafficChanged(
            deployment=rolled,
            at=NOW,
            actor="canary-bot",
            action="rolled_back",
            alias_before=SPLIT,
            alias_after=BEFORE,
            reason="error rate 2.5% > 0.1%",
            automatic=True,
            detected_at=NOW - timedelta(seconds=1),
        )
    )
    call = last_post(slack)
    assert broadcast(call)
    assert "<!subteam^S0SRE>" in text_of(call.params["blocks"])
    assert call.params["text"].startswith("🔴 Rolled back production-lego-api:production to v41")
    parent = next(m for m in slack.messages() if m.ts == ref.ts)
    assert "🔴 production-lego-api:production — rolled back to v41" in text_of(parent.blocks or [])


@pytest.mark.parametrize(("what", "broadcasted"), [("drift", True), ("held", False), ("extended", False)])
def test_only_drift_among_state_notes_is_broadcast(
    notifier: SlackNotifier, slack: FakeSlack, what: Literal["drift", "held", "extended"], broadcasted: bool
) -> None:
    d, _ = start(notifier)
    notifier.publish(
        StateNoted(
            deployment=d.model_copy(update={"state": State.HELD}),
            at=NOW,
            actor="canary-bot",
            what=what,
            reason="x",
        )
    )
    call = last_post(slack)
    assert broadcast(call) is broadcasted
    assert ("<!subteam^S0SRE>" in text_of(call.params["blocks"])) is broadcasted


def test_event_before_the_thread_exists_is_posted_in_the_channel(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    notifier.publish(soak_report(deployment()))
    (message,) = slack.messages()
    assert message.channel == slack.channel_id("#deploys") and message.thread_ts is None
    assert slack.calls("chat.update") == []


# ---------------------------------------------------------------- alarms
def test_alarm_without_a_canary_goes_to_the_functions_channel(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    alarm = AlarmAlert(
        at=NOW,
        alarm_name="lego-5xx",
        state="ALARM",
        reason="Threshold Crossed",
        function=FUNCTION,
        deployment=None,
    )
    ref = notifier.publish(alarm)
    (message,) = slack.messages()
    assert ref is not None and ref.ts == message.ts
    assert message.channel == slack.channel_id("#deploys") and message.thread_ts is None
    assert message.text == "🚨 Canary Deployment Alert"
    assert "No live canary: alert only" in text_of(message.blocks or [])


def test_alarm_that_rolled_back_goes_in_the_thread_only_the_rollback_message_was_broadcast(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    d, ref = start(notifier)
    rolled = d.model_copy(update={"state": State.ROLLED_BACK})
    alarm = AlarmAlert(
        at=NOW,
        alarm_name="canary-bot/x/error-rate",
        state="ALARM",
        reason="Threshold Crossed",
        function=FUNCTION,
        deployment=rolled,
        rolled_back=True,
        received_at=NOW,
        reverted_at=NOW + timedelta(seconds=1.2),
    )
    notifier.publish(alarm)
    call = last_post(slack)
    # The rollback message was broadcast with the approvers: this detail stays in the thread, unmentioned.
    assert call.params["thread_ts"] == ref.ts and not broadcast(call)
    assert "(1.2 s)" in text_of(call.params["blocks"])
    assert "subteam" not in text_of(call.params["blocks"])
    assert len(slack.calls("chat.postMessage")) == 2  # the parent and this one: not posted twice


# ---------------------------------------------------------------- failures
def test_rate_limited_post_is_retried_and_delivered_once(
    notifier: SlackNotifier, slack: FakeSlack, sleeps: list[float]
) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=2)
    _, ref = start(notifier)
    assert len(slack.calls("chat.postMessage")) == 2
    assert [m.ts for m in slack.messages()] == [ref.ts]
    assert sleeps == [2.0]


def test_parent_update_failure_does_not_lose_the_posted_reply(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    d, _ = start(notifier)
    slack.fail_next("chat.update", status=200, error="message_not_found")
    reply = notifier.publish(soak_report(d))
    assert reply is not None
    assert reply.ts in [m.ts for m in slack.messages()]


def test_reply_that_cannot_be_posted_raises_and_the_parent_is_still_updated(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    d, ref = start(notifier)
    slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    with pytest.raises(SlackApiError):
        notifier.publish(soak_report(d))
    assert len(slack.calls("chat.update")) == 1
    assert [m.ts for m in slack.messages()] == [ref.ts]


def test_chart_upload_failure_does_not_hide_the_posted_report(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    d, _ = start(notifier)
    slack.fail_next("files.getUploadURLExternal", status=200, error="not_allowed")
    reply = notifier.publish(soak_report(d, chart=b"\x89PNG\r\n\x1a\nxx"))
    assert reply is not None and slack.uploaded_files() == []


def test_through_the_outbox_the_alarm_after_a_rollback_stays_in_the_thread_unmentioned(
    slack: FakeSlack,
) -> None:
    """The outbox path (serve's) as the direct one: the rollback message was the broadcast."""
    from bot.outbox import Outbox, OutboxDrainer
    from bot.store import open_store

    store, clock = open_store("sqlite://:memory:"), ManualClock(NOW)
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None))
    outbox = Outbox(store, clock, wake=OutboxDrainer(store, client, clock).drain)
    notifier = SlackNotifier(client, POLICY, clock, outbox=outbox)
    d = deployment()
    notifier.publish(Started(deployment=d, at=NOW, actor="cli:maria", alias_before=BEFORE, alias_after=SPLIT))
    notifier.publish(
        AlarmAlert(
            at=NOW,
            alarm_name="canary-bot/x/error-rate",
            state="ALARM",
            reason="Threshold Crossed",
            function=FUNCTION,
            deployment=d.model_copy(update={"state": State.ROLLED_BACK}),
            rolled_back=True,
            received_at=NOW,
            reverted_at=NOW + timedelta(milliseconds=15),
            approvers=("S0SREONCALL",),
        )
    )
    alarm = last_post(slack)
    assert "Canary Deployment Alert" in text_of(alarm.params["blocks"])
    assert alarm.params.get("thread_ts") and not broadcast(alarm)
    assert "subteam" not in text_of(alarm.params["blocks"])
