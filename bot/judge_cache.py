"""Incremental judging: a judged period is not judged again unless its figures (or what it is judged by) change.

A live canary is judged every tick on every complete period of its step, although between two ticks at most
the newest period or two are new and CloudWatch rarely revises an old one. `judge.judge_step` gives period k a
verdict that depends only on periods 0..k, the policy and `looks` (the periods the soak spans). So, per
deployment, this keeps the figures it last judged with their verdicts; on the next call the longest run of
leading periods whose figures are equal (same policy, same looks) keeps its verdicts and only the rest are
judged.

A pure cache: it never changes a verdict, only skips work whose answer it already has (tests/test_judge_cache.py
judges randomized soaks with and without it and compares every decision). Process-local and bounded by the
live deployments (`retain`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot import judge
from bot.config import FunctionPolicy
from bot.judge import PeriodVerdict
from bot.model import PeriodFigures


@dataclass(frozen=True, slots=True)
class _Judged:
    policy: FunctionPolicy
    looks: int
    figures: tuple[PeriodFigures, ...]  # oldest first
    verdicts: tuple[PeriodVerdict, ...]


class StepJudgeCache:
    def __init__(self) -> None:
        self._judged: dict[str, _Judged] = {}
        self.judged_periods = 0  # periods actually judged (not reused): for tests and the benchmark
        self.reused_periods = 0

    def judge_step(
        self, deployment_id: str, figures: Sequence[PeriodFigures], policy: FunctionPolicy, *, looks: int
    ) -> list[PeriodVerdict]:
        """`judge.judge_step(figures, policy, looks=looks)`, reusing the verdicts of unchanged leading periods."""
        ordered = tuple(sorted(figures, key=lambda f: f.start))
        before = self._judged.get(deployment_id)
        known: tuple[PeriodVerdict, ...] = ()
        if before is not None and before.looks == looks and before.policy == policy:
            same = _common_prefix(before.figures, ordered)
            known = before.verdicts[:same]
        verdicts = judge.judge_step(ordered, policy, looks=looks, known=known)
        self.reused_periods += len(known)
        self.judged_periods += len(verdicts) - len(known)
        self._judged[deployment_id] = _Judged(policy, looks, ordered, tuple(verdicts))
        return verdicts

    def retain(self, deployment_ids: Iterable[str]) -> None:
        """Forget every deployment but these (the live ones): the cache stays as small as the live set."""
        keep = set(deployment_ids)
        for gone in [key for key in self._judged if key not in keep]:
            del self._judged[gone]

    def __len__(self) -> int:
        return len(self._judged)


def _common_prefix(old: Sequence[PeriodFigures], new: Sequence[PeriodFigures]) -> int:
    same = 0
    for a, b in zip(old, new, strict=False):
        if a is not b and a != b:
            break
        same += 1
    return same


__all__ = ["StepJudgeCache"]
