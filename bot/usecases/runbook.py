"""The runbook's use cases beyond the canary itself: revert, the emergency fallback, deploy locks."""

from __future__ import annotations

from dataclasses import dataclass

from bot.usecases.locks import DeployLocks
from bot.usecases.recovery import Fallback, Revert


@dataclass(frozen=True)
class Runbook:
    revert: Revert
    fallback: Fallback
    locks: DeployLocks
