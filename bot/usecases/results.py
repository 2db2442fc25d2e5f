"""What the use cases hand back to Slack and the CLI to render."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from bot.config import FunctionPolicy
from bot.model import AliasState, AuditRecord, Deployment
from bot.ports import PublishedVersion
from bot.preflight import PreflightReport

PLAN_TTL = timedelta(minutes=15)


class StartPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    alias_now: AliasState
    policy: FunctionPolicy
    published: PublishedVersion | None = None
    alarms_overridden: tuple[str, ...] = ()
    alarm_rollback_off: str | None = (
        None  # why a CloudWatch alarm cannot roll this canary back (None: it can)
    )
    preflight: PreflightReport | None = None  # the checklist run before this plan (bot.preflight_guard)

    @property
    def after(self) -> str:
        d = self.deployment
        return AliasState(
            function=d.function,
            alias=d.alias,
            version=d.stable_version,
            weights={d.canary_version: d.weight},
            revision_id="",
        ).describe()


class ActionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    alias: AliasState | None = None
    message: str


class StatusEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    alias: AliasState | None
    alias_error: str | None = None
    policy: FunctionPolicy | None = None


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: Deployment
    audit: list[AuditRecord]
