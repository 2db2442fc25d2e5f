"""The three stories `make demo` tells, each in a fresh world. Each returns True only when it ended as it should."""

from __future__ import annotations

from collections.abc import Callable

from bot.model import State
from canary_demo.seed import LEGO_API, REDIS_URL
from canary_demo.world import DemoWorld

Write = Callable[[str], None]


def _title(write: Write, text: str) -> None:
    write("\n" + "═" * 100)
    write(f"  {text}")
    write("═" * 100)


def _verdict(write: Write, ok: bool, good: str, bad: str) -> bool:
    write(f"\n{'✅' if ok else '🔴'} {good if ok else bad}")
    return ok


def healthy(write: Write) -> bool:
    """Publish v2 with REDIS_URL, 5% canary, 1 h soak with 4 reports, two-person promotion, summary."""
    _title(write, "Scenario 1 · healthy: the Redis migration, as the runbook plans it")
    with DemoWorld(write, publish_redis_version=False) as world:
        write("production-lego-api v1 (in-memory cache) serves 100% of alias production.")
        world.print_alias()
        write(
            "\nFirst try: @maria forgets the new version's REDIS_URL; the preflight refuses, nothing changes."
        )
        world.slash("maria", f"start {LEGO_API} --publish")
        refused = world.alias() == ("1", {}) and _versions(world) == ["$LATEST", "1"]
        world.slash("maria", f"start {LEGO_API} --publish --set REDIS_URL={REDIS_URL}")
        world.press("maria", world.button("Start"))
        write("\n… 2,000 requests a minute; the soak runs for an hour of simulated time …")
        world.run(61, stop=lambda: _state(world) is State.AWAITING_APPROVAL)
        world.press("maria", world.button("Promote"))
        world.press("joe", world.button("Promote"))
        world.print_alias()
        write("\n… v2 serves everyone; the bot keeps watching it for 24 h of simulated time …")
        world.watch(24)
        d = world.runtime.service.history(LEGO_API)[0].deployment
        post_mortem = any("Post-mortem · v2" in str(m.blocks) for m in world.slack.messages())
        ok = d.state is State.PROMOTED and world.alias() == ("2", {}) and post_mortem and refused
        return _verdict(
            write,
            ok,
            "healthy: the preflight refused a start without REDIS_URL; v2 promoted after a clean soak by a "
            "second person; 24 h watched, post-mortem posted",
            f"healthy: expected v2 promoted, got {d.state.value} with alias {world.alias()}",
        )


def bad_canary(write: Write) -> bool:
    """v2's error rate spikes; the soak judge (or the canary alarm, whichever has the proof first) rolls
    back at once and tells everyone."""
    _title(write, "Scenario 2 · bad canary: Redis errors, automatic rollback")
    with DemoWorld(write, publish_redis_version=True) as world:
        write("v1 serves production; v2 (with REDIS_URL) was published earlier.")
        world.slash("maria", f"start {LEGO_API} 2")
        world.press("maria", world.button("Start"))
        write("\n… ten healthy minutes …")
        world.run(10, quiet=True)
        world.screen.flush()
        write("\n… then v2 starts failing: 2.5% of its requests hit 'Redis connection pool exhausted' …")
        world.sim.behave("2", error_rate=0.025, error_message="Redis connection pool exhausted")
        world.run(20, stop=lambda: _state(world) is not State.CANARY)
        world.print_alias()
        d = world.runtime.service.history(LEGO_API)[0].deployment
        # The sequential judge proves 2.5% > 0.1% from one period; the alarm needs two (2 × 5 min).
        by = f"alarm {world.alarms.fired[0]}" if world.alarms.fired else "the soak judge"
        caught = bool(world.alarms.fired) or "error rate" in (d.reason or "")
        ok = d.state is State.ROLLED_BACK and world.alias() == ("1", {}) and caught
        return _verdict(
            write,
            ok,
            f"bad canary: rolled back by {by}; v1 serves 100% again",
            f"bad canary: expected a rollback on the error rate, got {d.state.value} with alias {world.alias()}"
            f" ({d.reason})",
        )


def regression_after_promotion(write: Write) -> bool:
    """v2 is promoted after a clean soak; hours into the 24 h watch its p95 climbs; the watch alerts the
    approvers, one presses Revert on the alert, and v1 serves 100% again at once."""
    _title(write, "Scenario 3 · a regression during the watch: Revert from the alert")
    with DemoWorld(write, publish_redis_version=True) as world:
        write(
            "v2 (with REDIS_URL) soaked clean for an hour and @joe promoted it (that part, told above, is skipped)."
        )
        with world.quietly():
            world.slash("maria", f"start {LEGO_API} 2")
            world.press("maria", world.button("Start"))
            world.run(61, quiet=True, stop=lambda: _state(world) is State.AWAITING_APPROVAL)
            world.screen.flush()
            world.press("joe", world.button("Promote"))
        world.print_alias()
        write("\n… two hours into the watch, the evening load slows Redis: v2's p95 climbs past 150 ms …")
        world.watch(2)
        world.sim.behave("2", p50_ms=90.0, p95_ms=180.0)
        world.watch(6, stop=lambda: _said(world, "during the watch after promotion"))
        world.press("joe", world.button("Revert"))
        world.screen.flush()
        world.print_alias()
        d = world.runtime.service.history(LEGO_API)[0].deployment
        announced = _said(world, "Reverted the promotion of")
        ok = (
            d.state is State.ROLLED_BACK
            and world.alias() == ("1", {})
            and announced
            and d.watch_until is None
        )
        return _verdict(
            write,
            ok,
            "regression after promotion: reverted from the watch's alert; v1 serves 100% again, the watch ended",
            f"regression after promotion: expected a revert, got {d.state.value} with alias {world.alias()}",
        )


def _versions(world: DemoWorld) -> list[str]:
    answer = world.lambda_.list_versions_by_function(FunctionName=LEGO_API)
    return sorted(v["Version"] for v in answer["Versions"])


def _said(world: DemoWorld, text: str) -> bool:
    return any(text in str(m.blocks) for m in world.slack.messages())


def _state(world: DemoWorld) -> State | None:
    history = world.runtime.service.history(LEGO_API, limit=1)
    return history[0].deployment.state if history else None
