"""The soak scenarios through the Slack surface: the embedded demo world (real Bolt app, service, soak runner,
SQS alarm intake, moto, fake Slack), asserting on what Slack received."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.model import State
from canary_demo.seed import LEGO_API
from canary_demo.world import CHANNEL_ID, DemoWorld


@pytest.fixture
def world() -> Iterator[DemoWorld]:
    lines: list[str] = []
    with DemoWorld(lines.append, publish_redis_version=True) as w:
        yield w


def _state(world: DemoWorld) -> State:
    return world.runtime.service.history(LEGO_API, limit=1)[0].deployment.state


def _thread(world: DemoWorld) -> list[str]:
    return [str(m.blocks) for m in world.slack.messages(CHANNEL_ID) if m.thread_ts]


def _start(world: DemoWorld) -> None:
    world.slash("maria", f"start {LEGO_API} 2")
    world.press("maria", world.button("Start"))
    assert world.alias() == ("1", {"2": 0.05})


def test_a_clean_hour_posts_four_reports_with_charts_then_asks_for_approval(world: DemoWorld) -> None:
    _start(world)
    world.run(61, quiet=True, stop=lambda: _state(world) is State.AWAITING_APPROVAL)
    reports = [t for t in _thread(world) if "Soak report" in t]
    assert [f"Soak report {n}/4" in r for n, r in enumerate(reports, 1)] == [True] * 4
    assert len(world.slack.uploaded_files()) == 4
    assert any("approval needed" in t and "Promote" in t for t in _thread(world))
    broadcast = [c for c in world.slack.calls("chat.postMessage") if c.params.get("reply_broadcast")]
    assert any("approval needed" in str(c.params.get("blocks")) for c in broadcast)
    world.screen.flush()
    world.press("joe", world.button("Promote"))
    assert _state(world) is State.PROMOTED and world.alias() == ("2", {})
    assert any("Post-deployment" in t or "post-deployment" in t.lower() for t in _thread(world))


def test_a_latency_breach_seen_by_the_judge_rolls_back_after_two_periods(world: DemoWorld) -> None:
    _start(world)
    world.run(10, quiet=True)
    world.sim.behave("2", p50_ms=90.0, p95_ms=180.0)
    ran = world.run(20, quiet=True, stop=lambda: _state(world) is not State.CANARY)
    assert _state(world) is State.ROLLED_BACK and world.alias() == ("1", {})
    assert 10 <= ran <= 16  # two full breaching 5-minute periods, not one
    rollback = next(t for t in _thread(world) if "Rolled back" in t)
    assert "p95" in rollback and "reverted" in rollback
    assert "ROLLBACK INITIATED" in " ".join(_thread(world))


def test_too_little_canary_traffic_is_inconclusive_and_never_promoted(world: DemoWorld) -> None:
    world.sim.per_minute = 600  # 5% → ~150 canary invocations a period, under min_invocations (200)
    _start(world)
    world.run(61, quiet=True, stop=lambda: _state(world) is not State.CANARY)
    assert _state(world) is State.HELD
    assert world.alias() == ("1", {"2": 0.05})
    inconclusive = next(t for t in _thread(world) if "inconclusive" in t.lower())
    assert "Extend" in inconclusive and "Roll back" in inconclusive
