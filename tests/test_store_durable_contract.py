"""The store's durable-action contract (intents, leases, outbox, claims, group memberships) on every store:
SQLite file, SQLite memory and DynamoDB on moto."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.intents import Intent, Routing
from bot.model import State
from bot.outbox_model import OutboxMessage
from bot.ports import IntentInProgress, StaleDeployment, StorePort
from tests.support.store import STORE_KINDS, T0, make_audit, make_deployment, store_of_kind


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorePort]:
    with store_of_kind(request.param, tmp_path) as opened:
        yield opened


def intent(
    intent_id: str, kind: str = "promote", *, deployment_id: str = "dep-1", minutes: int = 0
) -> Intent:
    return Intent(
        id=intent_id,
        deployment_id=deployment_id,
        kind=kind,  # type: ignore[arg-type]
        target=Routing(version="8"),
        accept_from=(Routing(version="7", weights={"8": 0.05}),),
        actor="U024BE7LH",
        created_at=T0 + timedelta(minutes=minutes),
    )


def message(key: str, lane: str = "deployment:dep-1", *, minutes: int = 0) -> OutboxMessage:
    at = T0 + timedelta(minutes=minutes)
    return OutboxMessage(
        key=key, lane=lane, method="post", params={"text": key}, next_attempt_at=at, created_at=at
    )


# ---------------------------------------------------------------- intents
def test_one_intent_per_deployment_is_open_and_others_are_refused(store: StorePort) -> None:
    store.create(make_deployment())
    stored, superseded = store.open_intent(intent("i-1"))
    assert superseded == [] and stored.is_open

    with pytest.raises(IntentInProgress, match="promote by U024BE7LH"):
        store.open_intent(intent("i-2", "weight"))

    assert store.open_intent_for("dep-1") == stored
    assert store.get_intent("i-2") is None


def test_a_superseding_intent_closes_the_open_one_and_returns_it(store: StorePort) -> None:
    store.create(make_deployment())
    store.open_intent(intent("i-1"))

    stored, superseded = store.open_intent(intent("i-2", "rollback", minutes=1), supersede=True)

    assert [(i.id, i.status) for i in superseded] == [("i-1", "superseded")]
    assert store.open_intent_for("dep-1") == stored
    assert [(i.id, i.status) for i in store.intents_for("dep-1")] == [("i-1", "superseded"), ("i-2", "open")]


def test_an_intent_on_a_deployment_that_moved_on_is_refused(store: StorePort) -> None:
    d = store.create(make_deployment())
    store.save(d)

    with pytest.raises(StaleDeployment):
        store.open_intent(intent("i-1"), deployment_revision=0)

    assert store.open_intent_for("dep-1") is None
    store.open_intent(intent("i-1"), deployment_revision=1)
    assert store.open_intent_for("dep-1") is not None


def test_closing_an_intent_frees_the_deployment_for_the_next_one(store: StorePort) -> None:
    store.create(make_deployment())
    first, _ = store.open_intent(intent("i-1"))
    store.save_intent(first.model_copy(update={"attempts": 2, "last_error": "throttled"}))
    assert store.open_intent_for("dep-1") == first.model_copy(
        update={"attempts": 2, "last_error": "throttled"}
    )

    store.save_intent(first.model_copy(update={"status": "cancelled"}))

    assert store.open_intent_for("dep-1") is None
    second, _ = store.open_intent(intent("i-2", minutes=1))
    assert store.open_intent_for("dep-1") == second
    closed = store.get_intent("i-1")
    assert closed is not None and closed.status == "cancelled"


def test_open_intents_are_rollbacks_first_then_oldest(store: StorePort) -> None:
    for n, (kind, minutes) in enumerate([("promote", 0), ("weight", 1), ("rollback", 2), ("start", -5)]):
        store.create(make_deployment(f"dep-{n}", alias=f"a{n}"))
        store.open_intent(intent(f"i-{n}", kind, deployment_id=f"dep-{n}", minutes=minutes))
    done, _ = store.open_intent(intent("i-x", deployment_id="dep-x"))
    store.save_intent(done.model_copy(update={"status": "done"}))

    assert [i.id for i in store.open_intents()] == ["i-2", "i-0", "i-1", "i-3"]


def test_completing_an_intent_records_deployment_audit_and_intent_together(store: StorePort) -> None:
    d = store.create(make_deployment())
    opened, _ = store.open_intent(intent("i-1"))
    promoted = d.model_copy(update={"state": State.PROMOTED, "ended_at": T0})

    saved = store.complete_intent(
        opened.model_copy(update={"status": "done"}), promoted, make_audit(action="promote", phase="done")
    )

    assert saved.revision == 1 and store.get("dep-1") == saved
    assert store.live_for("checkout", "live") is None
    assert [(r.action, r.phase) for r in store.audit_for("dep-1")] == [("promote", "done")]
    assert store.open_intent_for("dep-1") is None
    done = store.get_intent("i-1")
    assert done is not None and done.status == "done"


def test_a_stale_completion_writes_nothing_at_all(store: StorePort) -> None:
    d = store.create(make_deployment())
    opened, _ = store.open_intent(intent("i-1"))
    store.save(d.model_copy(update={"state": State.HELD, "held_from": State.CANARY}))

    with pytest.raises(StaleDeployment):
        store.complete_intent(
            opened.model_copy(update={"status": "done"}),
            d.model_copy(update={"state": State.PROMOTED}),
            make_audit(action="promote", phase="done"),
        )

    held = store.get("dep-1")
    assert held is not None and held.state is State.HELD
    assert store.audit_for("dep-1") == []
    assert store.open_intent_for("dep-1") == opened


# ---------------------------------------------------------------- leases
def test_a_lease_is_held_by_one_owner_until_it_lapses_and_the_token_grows_on_takeover(
    store: StorePort,
) -> None:
    first = store.acquire_lease("deployment:x", "a", T0, 30)
    assert first is not None
    assert store.acquire_lease("deployment:x", "b", T0 + timedelta(seconds=29), 30) is None
    assert store.acquire_lease("deployment:x", "a", T0 + timedelta(seconds=10), 30) == first  # renewal
    assert store.holds_lease("deployment:x", "a", first, T0 + timedelta(seconds=39))

    later = T0 + timedelta(seconds=41)
    taken = store.acquire_lease("deployment:x", "b", later, 30)

    assert taken is not None and taken > first
    assert not store.holds_lease("deployment:x", "a", first, later)
    assert store.holds_lease("deployment:x", "b", taken, later)


def test_a_released_lease_is_free_at_once_and_only_its_holder_can_release_it(store: StorePort) -> None:
    token = store.acquire_lease("deployment:x", "a", T0, 30)
    assert token is not None
    store.release_lease("deployment:x", "b")  # not b's to release
    assert store.acquire_lease("deployment:x", "b", T0, 30) is None

    store.release_lease("deployment:x", "a")

    taken = store.acquire_lease("deployment:x", "b", T0, 30)
    assert taken is not None and taken > token
    assert not store.holds_lease("deployment:x", "a", token, T0)
    assert not store.holds_lease("nothing", "a", 1, T0)


# ---------------------------------------------------------------- claims
def test_a_released_claim_can_be_claimed_again(store: StorePort) -> None:
    assert store.claim("sqs:m-1", T0)
    assert store.is_claimed("sqs:m-1")
    assert not store.claim("sqs:m-1", T0)

    store.release("sqs:m-1")

    assert not store.is_claimed("sqs:m-1")
    assert store.claim("sqs:m-1", T0)


# ---------------------------------------------------------------- outbox
def test_a_key_is_enqueued_once(store: StorePort) -> None:
    assert store.enqueue(message("k"))
    assert not store.enqueue(message("k", minutes=1))
    assert store.outbox_pending() == 1


def test_heads_are_the_first_pending_message_of_each_due_lane_oldest_lane_first(store: StorePort) -> None:
    store.enqueue(message("b1", "lane-b"))
    store.enqueue(message("a1", "lane-a"))
    store.enqueue(message("a2", "lane-a"))
    store.enqueue(message("c1", "lane-c", minutes=10))  # not due yet

    assert [m.key for m in store.outbox_heads(T0)] == ["b1", "a1"]
    assert [m.key for m in store.outbox_heads(T0, limit=1)] == ["b1"]
    assert [m.key for m in store.outbox_heads(T0 + timedelta(minutes=10))] == ["b1", "a1", "c1"]


def test_a_sent_head_gives_way_to_the_next_message_of_its_lane(store: StorePort) -> None:
    store.enqueue(message("a1"))
    store.enqueue(message("a2"))
    [head] = store.outbox_heads(T0)

    store.save_outbox(head.model_copy(update={"status": "sent", "sent_at": T0, "result_ts": "1.2"}))

    [next_head] = store.outbox_heads(T0)
    assert next_head.key == "a2" and next_head.id is not None and next_head.id > (head.id or 0)
    sent = store.outbox_message("a1")
    assert sent is not None and sent.status == "sent" and sent.result_ts == "1.2"
    assert store.outbox_pending() == 1


def test_a_head_retried_later_holds_its_lane_until_due(store: StorePort) -> None:
    store.enqueue(message("a1"))
    store.enqueue(message("a2"))
    [head] = store.outbox_heads(T0)

    store.save_outbox(head.model_copy(update={"attempts": 1, "next_attempt_at": T0 + timedelta(minutes=1)}))

    assert store.outbox_heads(T0) == []
    assert [m.key for m in store.outbox_heads(T0 + timedelta(minutes=1))] == ["a1"]


def test_a_message_without_a_store_id_cannot_be_saved(store: StorePort) -> None:
    with pytest.raises(ValueError, match="no id"):
        store.save_outbox(message("k"))


# ---------------------------------------------------------------- user groups
def test_the_last_membership_seen_of_a_group_is_kept(store: StorePort) -> None:
    assert store.group_members("S1") is None
    store.save_group_members("S1", ["U2", "U1"], T0)
    store.save_group_members("S1", ["U3"], T0 + timedelta(minutes=1))

    assert store.group_members("S1") == (frozenset({"U3"}), T0 + timedelta(minutes=1))


def test_saving_an_intent_that_was_never_opened_stores_nothing(store: StorePort) -> None:
    store.create(make_deployment())
    held, _ = store.open_intent(intent("i-1"))

    store.save_intent(intent("ghost").model_copy(update={"status": "done"}))
    store.save_intent(intent("ghost-open"))

    assert store.get_intent("ghost") is None and store.get_intent("ghost-open") is None
    assert store.open_intent_for("dep-1") == held


def test_unfinished_intents_are_the_open_and_the_recorded_ones_rollbacks_first(store: StorePort) -> None:
    for n in range(4):
        store.create(make_deployment(f"dep-{n}", alias=f"a{n}"))
    store.open_intent(intent("open-promote", deployment_id="dep-0"))
    store.open_intent(intent("open-rollback", "rollback", deployment_id="dep-1", minutes=1))
    recorded, _ = store.open_intent(intent("recorded", "weight", deployment_id="dep-2", minutes=-1))
    store.save_intent(recorded.model_copy(update={"status": "recorded"}))
    done, _ = store.open_intent(intent("done", deployment_id="dep-3"))
    store.save_intent(done.model_copy(update={"status": "recorded"}))
    store.save_intent(done.model_copy(update={"status": "done"}))

    assert [i.id for i in store.unfinished_intents()] == ["open-rollback", "open-promote", "recorded"]
    assert [i.id for i in store.open_intents()] == ["open-rollback", "open-promote"]


def test_a_recorded_thread_keeps_the_revision_and_survives_a_save_made_without_it(store: StorePort) -> None:
    read_before = store.create(make_deployment())

    store.record_thread("dep-1", "C0DEPLOYS", "1700000000.000100")
    store.record_thread("dep-1", "C0OTHER", "1700000000.999999")  # write-once

    recorded = store.get("dep-1")
    assert recorded is not None and recorded.revision == 0
    assert (recorded.channel, recorded.thread_ts) == ("C0DEPLOYS", "1700000000.000100")
    saved = store.save(read_before.model_copy(update={"last_verdict": "pass"}))
    assert saved.thread_ts == "1700000000.000100"
    again = store.get("dep-1")
    assert again is not None and again.thread_ts == "1700000000.000100" and again.last_verdict == "pass"
