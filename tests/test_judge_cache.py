"""Incremental judging is a pure cache: with or without it, every verdict and every decision is the same."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from bot.config import FunctionPolicy
from bot.judge import decide, judge_step
from bot.judge_cache import StepJudgeCache
from bot.model import PeriodFigures
from tests.support.canary_core import PERIOD, T0, period, started, version

POLICIES = {
    "sequential": FunctionPolicy(judge="sequential"),
    "threshold": FunctionPolicy(judge="threshold"),
    "sequential, stricter": FunctionPolicy(judge="sequential", confidence=0.99),
}


def _random_period(rng: random.Random, start_index: int) -> PeriodFigures:
    invocations = rng.choice([0, 40, 400, 1000, 4000])
    errors = rng.choice([0, 0, 0, 1, 2, 5, 20]) if invocations else 0
    misses = rng.choice([30, 60, 200, 600])
    return period(
        T0 + start_index * PERIOD,
        canary=version(
            "42",
            invocations=invocations,
            errors=min(errors, invocations),
            p95_ms=rng.choice([None, 42.0, 90.0, 400.0]),
            p99_ms=rng.choice([None, 95.0, 900.0]),
            cache_hits=1000 - misses,
            cache_misses=misses,
            cache_miss_p95_ms=rng.choice([None, 120.0, 800.0]),
        ),
    )


@pytest.mark.parametrize("seed", range(12))
def test_judging_with_the_cache_gives_the_verdicts_and_decisions_of_judging_from_scratch(seed: int) -> None:
    """Three deployments ticked 40 times: a period added most ticks, old ones revised (CloudWatch backfills),
    periods missing then arriving, the soak extended (more looks), the policy swapped, a step restarted."""
    rng = random.Random(seed)
    cache = StepJudgeCache()
    d = started()
    deployments = {f"dep-{i}": [_random_period(rng, 0)] for i in range(3)}
    policy_of = dict.fromkeys(deployments, "sequential")
    looks_of = dict.fromkeys(deployments, 12)
    decisions = 0
    for tick in range(40):
        for dep_id, periods in deployments.items():
            move = rng.random()
            if move < 0.5:
                periods.append(_random_period(rng, len(periods)))
            elif move < 0.65 and periods:
                periods[rng.randrange(len(periods))] = _random_period(rng, rng.randrange(len(periods)))
                periods.sort(key=lambda f: f.start)
                periods[:] = list({f.start: f for f in periods}.values())
            elif move < 0.72:
                looks_of[dep_id] += 3  # the soak was extended
            elif move < 0.78:
                policy_of[dep_id] = rng.choice(list(POLICIES))
            elif move < 0.8:
                periods[:] = [_random_period(rng, len(periods))]  # a new step: its own periods only
            policy = POLICIES[policy_of[dep_id]]
            shown = rng.sample(periods, len(periods))  # any order: the judge sorts by start
            cached = cache.judge_step(dep_id, shown, policy, looks=looks_of[dep_id])
            fresh = judge_step(shown, policy, looks=looks_of[dep_id])
            assert cached == fresh, (seed, tick, dep_id)
            now = T0 + len(periods) * PERIOD + timedelta(seconds=1)
            assert decide(d, cached, policy, now=now) == decide(d, fresh, policy, now=now)
            decisions += 1
    assert decisions == 120
    assert cache.reused_periods > 0  # and it did skip work


def test_an_unchanged_step_is_not_judged_again_and_a_new_period_alone_is() -> None:
    cache = StepJudgeCache()
    policy = POLICIES["sequential"]
    hour = [period(T0 + i * PERIOD) for i in range(12)]

    cache.judge_step("dep-1", hour, policy, looks=12)
    cache.judge_step("dep-1", hour, policy, looks=12)
    assert (cache.judged_periods, cache.reused_periods) == (12, 12)

    cache.judge_step("dep-1", [*hour, period(T0 + 12 * PERIOD)], policy, looks=12)
    assert (cache.judged_periods, cache.reused_periods) == (13, 24)


def test_a_revised_period_is_judged_again_with_every_period_after_it() -> None:
    cache = StepJudgeCache()
    policy = POLICIES["sequential"]
    hour = [period(T0 + i * PERIOD) for i in range(12)]
    cache.judge_step("dep-1", hour, policy, looks=12)

    revised = [*hour[:9], period(T0 + 9 * PERIOD, canary=version("42", errors=30)), *hour[10:]]
    verdicts = cache.judge_step("dep-1", revised, policy, looks=12)

    assert (cache.judged_periods, cache.reused_periods) == (12 + 3, 9)
    assert verdicts == judge_step(revised, policy, looks=12)


def test_other_looks_or_another_policy_judge_every_period_again() -> None:
    cache = StepJudgeCache()
    hour = [period(T0 + i * PERIOD) for i in range(6)]
    cache.judge_step("dep-1", hour, POLICIES["sequential"], looks=12)
    cache.judge_step("dep-1", hour, POLICIES["sequential"], looks=15)
    cache.judge_step("dep-1", hour, POLICIES["sequential, stricter"], looks=15)

    assert (cache.judged_periods, cache.reused_periods) == (18, 0)


def test_the_cache_keeps_only_the_deployments_it_is_told_are_live() -> None:
    cache = StepJudgeCache()
    for dep_id in ("dep-1", "dep-2", "dep-3"):
        cache.judge_step(dep_id, [period(T0)], POLICIES["threshold"], looks=12)

    cache.retain(["dep-2"])

    assert len(cache) == 1
    cache.judge_step("dep-2", [period(T0)], POLICIES["threshold"], looks=12)
    assert cache.reused_periods == 1
