"""The preflight before a start: gather, evaluate, and refuse on a 🔴 unless an approver overrides it.

Kept out of bot/service.py so the start use case needs one call (`guard_start`) and one field on its plan.
"""

from __future__ import annotations

from typing import Any

from bot.actors import Actor, Authorizer
from bot.config import FunctionPolicy
from bot.ports import AwsFailure, CanaryError, PreflightPort
from bot.preflight import PreflightReport, PreflightRequest, PreflightSettings, evaluate, facts_needed
from bot.verbs import PreflightArgs, StartArgs


class PreflightFailed(CanaryError):
    """A preflight check is 🔴 and nobody overrode it: the start is refused, nothing was changed."""

    def __init__(self, report: PreflightReport) -> None:
        lines = "; ".join(f"{r.title}: {r.evidence}" for r in report.failed)
        super().__init__(
            f"preflight failed for {report.function}:{report.alias}: {lines}. "
            "An approver may start anyway with --override-preflight REASON."
        )
        self.report = report


def settings_of(policy: FunctionPolicy) -> PreflightSettings:
    return PreflightSettings(
        cache_url_env=policy.cache_url_env,
        secret=policy.secret,
        billing_alarm_usd=policy.billing_alarm_usd,
        thresholds=policy.thresholds,
        log_group=policy.log_group,
    )


def preflight_request(
    policy: FunctionPolicy,
    function: str,
    *,
    alias: str | None = None,
    version: str | None = None,
    env_changes: dict[str, str | None] | None = None,
) -> PreflightRequest:
    return PreflightRequest(
        function=function,
        alias=alias or policy.alias,
        version=version,
        env_changes=env_changes or {},
        checks=policy.preflight,
        settings=settings_of(policy),
        period_seconds=int(policy.period.total_seconds()),
    )


def run_preflight(port: PreflightPort, request: PreflightRequest) -> PreflightReport:
    return evaluate(port.gather(request, facts_needed(request.checks)))


def report_for(port: PreflightPort | None, policy: FunctionPolicy, args: PreflightArgs) -> PreflightReport:
    """The `preflight` verb: the policy's checklist against the target version (None: $LATEST). Read-only."""
    if port is None:
        raise AwsFailure("preflight is not configured in this process (no AWS adapters for it)")
    return run_preflight(
        port, preflight_request(policy, args.function, alias=args.alias, version=args.version)
    )


def guard_start(
    port: PreflightPort | None,
    args: StartArgs,
    policy: FunctionPolicy,
    actor: Actor,
    authorizer: Authorizer,
) -> PreflightReport | None:
    """The start's preflight (None without a preflight adapter). Raises PreflightFailed on a 🔴 that is not
    overridden. `--override-alarms` (checked by the alarm guard) covers the alarms_quiet check."""
    if port is None:
        return None
    changes: dict[str, str | None] = dict(args.set_env)
    changes.update({key: None for key in args.unset_env})
    request = preflight_request(
        policy, args.function, alias=args.alias, version=args.version, env_changes=changes
    )
    report = run_preflight(port, request)
    blocking = [
        r for r in report.failed if not (r.name == "alarms_quiet" and args.override_alarms is not None)
    ]
    if not blocking:
        return report
    if args.override_preflight is None:
        raise PreflightFailed(report)
    authorizer.check(actor, policy, "override", None)
    return report.model_copy(
        update={"overridden_by": actor.label, "override_reason": args.override_preflight}
    )


def audit_detail(report: PreflightReport | None) -> dict[str, Any]:
    """What the plan's audit line keeps of the preflight: every result, and who overrode it and why."""
    if report is None:
        return {}
    return {
        "preflight": {
            "results": [
                {"check": r.name, "status": r.status, "evidence": r.evidence} for r in report.results
            ],
            "overridden_by": report.overridden_by,
            "override_reason": report.override_reason,
        }
    }
