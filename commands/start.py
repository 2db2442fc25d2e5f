"""/canary start FUNCTION [VERSION] [--publish --set K=V] …: an ephemeral preview with Start and Cancel."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot import views
from bot.actors import Actor
from bot.ports import MetricsPort, WindowRequest
from bot.preflight_guard import PreflightFailed
from bot.service import ActionResult, StartPlan
from bot.soak import align_down
from bot.verbs import StartArgs
from commands.base import Deps, Reply, safely

log = logging.getLogger(__name__)

# How far back the preview looks at the stable version's traffic.
RECENT = timedelta(hours=1)


def handle(args: StartArgs, actor: Actor, deps: Deps) -> Reply:
    def work() -> Reply:
        try:
            plan = deps.service.plan(args, actor)
        except PreflightFailed as exc:
            return Reply(text=f"⛔ {exc}", blocks=views.preflight_blocks(exc.report, refused=True))
        now = deps.clock.now()
        metrics = deps.soak.metrics if deps.soak is not None else None
        return Reply(
            text=f"Canary plan for {plan.deployment.key}: {plan.alias_now.describe()} → {plan.after}",
            blocks=views.preview_blocks(
                plan, now=now, stable_per_minute=stable_per_minute(metrics, plan, now)
            ),
        )

    return safely("start", work)


def stable_per_minute(metrics: MetricsPort | None, plan: StartPlan, now: datetime) -> float | None:
    """The stable version's invocations a minute over the last hour's complete periods, through the metrics
    port (one request with the stable as both versions); None when unknown. Only the preview uses it."""
    d = plan.deployment
    if metrics is None or plan.policy.judge != "sequential":
        return None
    period = plan.policy.period
    end = align_down(now, period)
    request = WindowRequest(
        deployment_id=f"plan:{d.id}",
        function=d.function,
        alias=d.alias,
        canary_version=d.stable_version,
        stable_version=d.stable_version,
        start=end - RECENT,
        end=end,
        period_seconds=int(period.total_seconds()),
    )
    try:
        periods = metrics.fetch([request]).get(request.deployment_id, [])
    except Exception:
        log.warning("no recent traffic figures for the preview of %s", d.key, exc_info=True)
        return None
    if not periods:
        return None
    return sum(p.stable.invocations for p in periods) / (RECENT.total_seconds() / 60)


def confirm(deployment_id: str, revision: int, actor: Actor, deps: Deps) -> Reply:
    """The Start button."""

    def work() -> Reply:
        result = deps.service.confirm(deployment_id, actor, expected_revision=revision)
        when = f"{deps.clock.now():%H:%M} UTC"
        text = f"🐤 Canary started by {actor.mention} at {when}: {result.deployment.key} now {_alias(result)}"
        return Reply(text=text, blocks=views.outcome_blocks(text), replace_original=True)

    return safely("start", work)


def cancel(deployment_id: str, revision: int, actor: Actor, deps: Deps) -> Reply:
    """The Cancel button."""

    def work() -> Reply:
        result = deps.service.cancel(deployment_id, actor, expected_revision=revision)
        text = f"✖️ {result.message} (by {actor.mention})"
        return Reply(text=text, blocks=views.outcome_blocks(text), replace_original=True)

    return safely("start", work)


def _alias(result: ActionResult) -> str:
    return result.alias.describe() if result.alias is not None else "(unknown)"
