"""The Slack outbox: rows first, delivered in order per lane, retried across restarts, each sent once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.clock import ManualClock
from bot.outbox import Outbox, OutboxDrainer, Thread, lane_of, parent_key
from bot.slack_client import RetryPolicy, make_web_client
from bot.store import open_store
from bot.store.sqlite import SqliteStore
from tests.support.fake_slack import FakeSlack

LANE = lane_of("d-1", "#deploys")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(channels={"#deploys": "C0DEPLOYS"}) as fake:
        yield fake


def _parts(slack: FakeSlack, store: SqliteStore, clock: ManualClock) -> tuple[Outbox, OutboxDrainer]:
    client = make_web_client("xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None))
    return Outbox(store, clock), OutboxDrainer(store, client, clock)


def test_a_message_slack_refuses_past_its_retries_is_delivered_once_slack_is_back(slack: FakeSlack) -> None:
    store, clock = open_store("sqlite://:memory:"), ManualClock()
    outbox, drainer = _parts(slack, store, clock)
    slack.fail_next("chat.postMessage", status=500, times=50)
    outbox.post(lane=LANE, channel="#deploys", params={"text": "rolled back"}, key="k1")

    assert drainer.drain() == 0
    assert slack.messages() == []
    slack.reset()
    clock.advance(timedelta(minutes=10))
    assert drainer.drain() == 1
    clock.advance(timedelta(minutes=10))
    assert drainer.drain() == 0
    assert [m.text for m in slack.messages()] == ["rolled back"]


def test_a_key_is_delivered_once_however_often_it_is_queued(slack: FakeSlack) -> None:
    store, clock = open_store("sqlite://:memory:"), ManualClock()
    outbox, drainer = _parts(slack, store, clock)
    assert outbox.post(lane=LANE, channel="#deploys", params={"text": "alarm"}, key="alarm:1")
    assert not outbox.post(lane=LANE, channel="#deploys", params={"text": "alarm"}, key="alarm:1")
    drainer.drain()
    assert not outbox.post(lane=LANE, channel="#deploys", params={"text": "alarm"}, key="alarm:1")
    drainer.drain()
    assert len(slack.messages()) == 1


def test_a_reply_waits_for_its_parent_and_goes_in_its_thread(slack: FakeSlack) -> None:
    store, clock = open_store("sqlite://:memory:"), ManualClock()
    outbox, drainer = _parts(slack, store, clock)
    slack.fail_next("chat.postMessage", status=500, times=50)  # the parent cannot be posted yet
    outbox.post(lane=LANE, channel="#deploys", params={"text": "parent"}, key=parent_key("d-1"))
    outbox.post(lane=LANE, channel="#deploys", params={"text": "reply"}, thread=Thread(key=parent_key("d-1")))
    outbox.update(
        lane=LANE, channel="#deploys", target=Thread(key=parent_key("d-1")), params={"text": "edited"}
    )
    drainer.drain()
    assert slack.messages() == []

    slack.reset()
    clock.advance(timedelta(minutes=10))
    drainer.drain()

    parent, reply = slack.messages()
    assert parent.thread_ts is None and reply.thread_ts == parent.ts
    assert [c.params["ts"] for c in slack.calls("chat.update")] == [parent.ts]


def test_messages_queued_before_a_restart_are_delivered_by_the_next_process(
    slack: FakeSlack, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    path = f"sqlite:///{tmp_path / 'bot.db'}"
    clock = ManualClock()
    store = open_store(path)
    outbox, _ = _parts(slack, store, clock)
    outbox.post(lane=LANE, channel="#deploys", params={"text": "before the crash"}, key="k")
    store.close()

    fresh = open_store(path)
    _, drainer = _parts(slack, fresh, clock)
    assert drainer.drain() == 1
    assert [m.text for m in slack.messages()] == ["before the crash"]


def test_a_permanent_slack_error_gives_the_row_up_and_the_lane_moves_on(slack: FakeSlack) -> None:
    store, clock = open_store("sqlite://:memory:"), ManualClock()
    outbox, drainer = _parts(slack, store, clock)
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    outbox.post(lane=LANE, channel="#deploys", params={"text": "lost channel"}, key="a")
    outbox.post(lane=LANE, channel="#deploys", params={"text": "next"}, key="b")
    drainer.drain()
    assert [m.text for m in slack.messages()] == ["next"]
    dead = store.outbox_message("a")
    assert dead is not None and dead.status == "dead" and dead.last_error == "channel_not_found"


def test_a_post_slack_took_just_before_a_crash_is_found_by_its_key_and_not_posted_again(
    slack: FakeSlack,
) -> None:
    store, clock = open_store("sqlite://:memory:"), ManualClock()
    outbox, drainer = _parts(slack, store, clock)
    outbox.post(lane=LANE, channel="#deploys", params={"text": "rolled back"}, key="story")
    row = store.outbox_message("story")
    assert row is not None
    # What a crash leaves: Slack took the post (it carries the key), the row still says "in flight".
    slack_client = make_web_client(
        "xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None)
    )
    slack_client.chat_postMessage(
        channel="#deploys",
        text="rolled back",
        metadata={"event_type": "canary_bot_outbox", "event_payload": {"key": "story"}},
    )
    store.save_outbox(row.model_copy(update={"in_flight": True}))

    assert drainer.drain() == 1

    assert [m.text for m in slack.messages()] == ["rolled back"]
    sent = store.outbox_message("story")
    assert sent is not None and sent.status == "sent" and sent.result_ts == slack.messages()[0].ts


def test_an_in_flight_post_slack_never_took_is_posted(slack: FakeSlack) -> None:
    store, clock = open_store("sqlite://:memory:"), ManualClock()
    outbox, drainer = _parts(slack, store, clock)
    outbox.post(lane=LANE, channel="#deploys", params={"text": "hello"}, key="k")
    row = store.outbox_message("k")
    assert row is not None
    store.save_outbox(row.model_copy(update={"in_flight": True}))
    assert drainer.drain() == 1
    assert [m.text for m in slack.messages()] == ["hello"]


def test_two_replicas_draining_one_outbox_send_each_row_once(slack: FakeSlack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = f"sqlite:///{tmp_path / 'bot.db'}"
    clock = ManualClock()
    outbox, first = _parts(slack, open_store(path), clock)
    _, second = _parts(slack, open_store(path), clock)
    for n in range(20):
        outbox.post(
            lane=lane_of(f"d-{n % 3}", "#deploys"), channel="#deploys", params={"text": f"m{n}"}, key=f"k{n}"
        )
    import threading

    threads = [threading.Thread(target=d.drain) for d in (first, second, first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first.drain()
    second.drain()
    texts = [m.text for m in slack.messages()]
    assert sorted(texts) == sorted(f"m{n}" for n in range(20))


def test_a_recorded_thread_survives_a_save_of_a_copy_read_before_it() -> None:
    from tests.support.world import make_world

    world = make_world()
    did = world.start()
    store = world.store
    before = store.get(did)
    assert before is not None and before.thread_ts is None
    store.record_thread(did, "C0DEPLOYS", "1700000000.000100")
    assert store.get(did).revision == before.revision  # type: ignore[union-attr]  # buttons stay current
    store.save(before.model_copy(update={"last_verdict": "✅ fine"}))
    after = store.get(did)
    assert after is not None and after.thread_ts == "1700000000.000100" and after.last_verdict == "✅ fine"
