"""Why a use case changed nothing: each one maps to a clear answer in Slack and an exit code in the CLI."""

from __future__ import annotations

from bot.ports import AwsFailure, CanaryError


class Refused(CanaryError):
    """The request is understood but cannot be done now; nothing was changed."""


class NothingLive(Refused):
    pass


class AlreadyActed(Refused):
    """Someone else's action on the same deployment won the race (or the click is stale)."""


class AlarmsFiring(Refused):
    def __init__(self, message: str, alarms: list[str]) -> None:
        super().__init__(message)
        self.alarms = alarms


class ActionPending(AwsFailure):
    """The change is recorded and being retried: AWS has not taken it yet (or another worker is on it)."""


class NotInPolicy(CanaryError):
    """The function is not listed in the policy file (bad input)."""
