"""The CLI's verb runner: parse one command line, run the verb on the service, print the outcome.

Shared by `canary-bot` (bot/cli.py) and the demo's terminal story; it imports neither.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError
from pydantic import BaseModel

from bot.actors import Actor, NotAuthorized
from bot.canary import IllegalTransition, InvalidPlan
from bot.config import PolicyError
from bot.console import Console
from bot.locks import Locked
from bot.model import DeployLock, Deployment
from bot.ports import (
    AliasDrift,
    AwsFailure,
    CanaryError,
    LiveDeploymentExists,
    NotFound,
    PublishConflict,
    StaleDeployment,
)
from bot.preflight import PreflightReport
from bot.preflight_guard import PreflightFailed, report_for
from bot.service import (
    ActionPending,
    CanaryService,
    HistoryEntry,
    NotInPolicy,
    Refused,
    StartPlan,
    StatusEntry,
)
from bot.units import format_duration, format_percent
from bot.usecases.runbook import Runbook
from bot.verbs import (
    ExtendArgs,
    FallbackArgs,
    HelpArgs,
    HistoryArgs,
    HoldArgs,
    LockArgs,
    PreflightArgs,
    RevertArgs,
    RollbackArgs,
    StartArgs,
    StatusArgs,
    TargetArgs,
    UnlockArgs,
    UsageError,
    VerbArgs,
    WeightArgs,
    help_text,
    parse_words,
)
from bot.views.parent import alarm_rollback_off_line
from bot.views.plan import sequential_rule
from bot.views.text import threshold_rules, threshold_sentence

EXIT_OK, EXIT_AWS, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 1, 2, 3

CLI_USAGE = (
    "usage: canary-bot [--json] [--yes] VERB ...   (verbs: start preflight status promote rollback history weight "
    "hold resume extend revert fallback lock unlock help) | canary-bot serve | canary-bot init-store | "
    "canary-bot demo [--interactive]"
)


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, UsageError | NotFound | NotInPolicy | InvalidPlan | PolicyError):
        return EXIT_BAD_INPUT
    if isinstance(
        exc,
        Refused
        | AliasDrift
        | LiveDeploymentExists
        | StaleDeployment
        | NotAuthorized
        | IllegalTransition
        | PublishConflict
        | Locked
        | PreflightFailed,
    ):
        return EXIT_REFUSED
    if isinstance(exc, AwsFailure):
        return EXIT_AWS
    return EXIT_AWS


def run(
    words: list[str],
    service: CanaryService,
    actor: Actor,
    console: Console,
) -> int:
    """Parse and run one verb. Every failure is one line (plus the usage line for bad input)."""
    as_json = _pop_flag(words, "--json")
    yes = _pop_flag(words, "--yes") | _pop_flag(words, "-y")
    try:
        args = parse_words(words)
        if as_json and not yes and args.verb in ("start", "promote", "rollback", "revert", "fallback"):
            # A question would corrupt machine-readable output, and --json must not imply --yes.
            raise UsageError(f"--json with {args.verb} needs --yes (there is no one to ask)", args.verb)
        if isinstance(args, RevertArgs | FallbackArgs | LockArgs | UnlockArgs | StatusArgs):
            return _dispatch_runbook(args, service, service.runbook, actor, console, as_json=as_json, yes=yes)
        return _dispatch(args, service, actor, console, as_json=as_json, yes=yes)
    except UsageError as exc:
        _fail(console, as_json, exc, usage=exc.usage)
        return EXIT_BAD_INPUT
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, …
        _fail(console, as_json, AwsFailure(f"AWS: {exc}"), usage=None)
        return EXIT_AWS
    except (CanaryError, PolicyError) as exc:
        verb = words[0] if words else None
        usage = None
        if exit_code_for(exc) == EXIT_BAD_INPUT:
            usage = UsageError("", verb).usage
        _fail(console, as_json, exc, usage=usage)
        return exit_code_for(exc)


def _pop_flag(words: list[str], flag: str) -> bool:
    found = flag in words
    while flag in words:
        words.remove(flag)
    return found


def _fail(console: Console, as_json: bool, exc: BaseException, *, usage: str | None) -> None:
    message = exc.message if isinstance(exc, UsageError) else str(exc)
    if isinstance(exc, ActionPending):
        # This process ends here; the retries are serve's (its reconciler reads the same store).
        message += (
            " From the CLI: a `canary-bot serve` on the same store retries it;"
            " without one, run the same command again."
        )
    if as_json:
        payload = {"ok": False, "error": type(exc).__name__, "message": message, "usage": usage}
        console.say(json.dumps(payload))
        return
    console.warn(f"error: {message}")
    if usage:
        console.warn(usage)


def _dispatch(
    args: VerbArgs, service: CanaryService, actor: Actor, console: Console, *, as_json: bool, yes: bool
) -> int:
    def emit(payload: BaseModel | list[Any] | dict[str, Any], text: str) -> int:
        if as_json:
            data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
            if isinstance(data, list):
                data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
            console.say(json.dumps(data, indent=2, default=str))
        else:
            console.say(text)
        return EXIT_OK

    match args:
        case HelpArgs(topic=topic):
            console.say(help_text(topic, prefix="canary-bot"))
            return EXIT_OK
        case StartArgs():
            plan = service.plan(args, actor)
            if not as_json:
                console.say(render_plan(plan))
            if not yes and not console.confirm("Start this canary?"):
                service.cancel(plan.deployment.id, actor)
                console.warn("not confirmed: plan cancelled, the alias was not touched")
                return EXIT_REFUSED
            result = service.confirm(plan.deployment.id, actor)
            return emit(result, result.message)
        case TargetArgs(verb="promote"):
            d = service.live(args.function, args.alias)
            if not _confirmed(console, yes, service, d, f"100% v{d.canary_version}", "Promote"):
                return EXIT_REFUSED
            result = service.promote(args.function, args.alias, actor, expected_revision=d.revision)
            return emit(result, result.message)
        case RollbackArgs():
            if args.reason is None:
                raise UsageError(
                    "--reason is required: say why, it goes in the audit log and the messages", "rollback"
                )
            d = service.live(args.function, args.alias)
            if not _confirmed(console, yes, service, d, f"100% v{d.stable_version}", "Roll back"):
                return EXIT_REFUSED
            result = service.rollback(
                args.function, args.alias, actor, reason=args.reason, expected_revision=d.revision
            )
            return emit(result, result.message)
        case PreflightArgs():
            report = report_for(service.starting.preflight, service.policy_for(args.function), args)
            emit(report, render_preflight(report))
            return EXIT_OK if report.ok else EXIT_REFUSED
        case HistoryArgs():
            history = service.history(args.function, args.alias, args.limit)
            return emit(history, render_history(history))
        case WeightArgs():
            result = service.set_weight(args.function, args.alias, actor, weight=args.weight)
            return emit(result, result.message)
        case HoldArgs():
            result = service.hold(args.function, args.alias, actor, reason=args.reason)
            return emit(result, result.message)
        case TargetArgs(verb="resume"):
            result = service.resume(args.function, args.alias, actor)
            return emit(result, result.message)
        case ExtendArgs():
            result = service.extend(args.function, args.alias, actor, by=args.by)
            return emit(result, result.message)
    raise UsageError(f"unsupported verb {args.verb}")


def _dispatch_runbook(
    args: RevertArgs | FallbackArgs | LockArgs | UnlockArgs | StatusArgs,
    service: CanaryService,
    book: Runbook,
    actor: Actor,
    console: Console,
    *,
    as_json: bool,
    yes: bool,
) -> int:
    """Revert, fallback, lock and unlock (bot.usecases), and status (which shows the locks)."""

    def emit(data: Any, text: str) -> int:
        console.say(json.dumps(data, indent=2, default=str) if as_json else text)
        return EXIT_OK

    def ask(question: str, shown: str) -> bool:
        if yes:
            return True
        console.say(shown)
        if console.confirm(question):
            return True
        console.warn("not confirmed: nothing changed")
        return False

    match args:
        case StatusArgs():
            entries = service.status(args.function, args.alias)
            locks = book.locks.locks(args.function, args.alias)
            if as_json:  # the same list as ever (scripts read it); `lock`/`unlock` --json give the locks
                return emit([e.model_dump(mode="json") for e in entries], "")
            text = render_status(entries)
            if locks:
                text += "\n" + "\n".join(render_lock(lock) for lock in locks)
            return emit(None, text)
        case RevertArgs():
            preview = book.revert.preview(args.function, args.alias)
            d = preview.deployment
            shown = (
                f"Revert {d.key}: {preview.alias.describe()} → {preview.after} "
                f"(undoes {d.id}'s promotion of v{d.canary_version})"
            )
            if not ask("Revert?", shown):
                return EXIT_REFUSED
            result = book.revert.revert(
                d.function,
                d.alias,
                actor,
                reason=args.reason,
                deployment_id=d.id,
                expected_revision=d.revision,
            )
            return emit(result.model_dump(mode="json"), result.message)
        case FallbackArgs():
            book.fallback.check_keys(args.function, args.alias, args.unset_env)  # a typo asks nothing
            alias = service.read_alias(args.function, args.alias)
            shown = (
                f"Fall back {alias.function}:{alias.alias}: {alias.describe()} → 100% a new version with "
                f"v{alias.version}'s code without {', '.join(args.unset_env)} (published now, no soak)"
            )
            if not ask("Fall back?", shown):
                return EXIT_REFUSED
            result = book.fallback.fallback(
                args.function, args.alias, actor, unset=args.unset_env, reason=args.reason
            )
            return emit(result.model_dump(mode="json"), result.message)
        case LockArgs():
            locked = book.locks.lock(args.function, args.alias, actor, reason=args.reason)
            return emit({"locks": [x.model_dump(mode="json") for x in locked.locks]}, locked.message)
        case UnlockArgs():
            unlocked = book.locks.unlock(args.function, args.alias, actor)
            return emit({"removed": [x.model_dump(mode="json") for x in unlocked.locks]}, unlocked.message)
    raise UsageError(f"unsupported verb {args.verb}")


def render_lock(lock: DeployLock) -> str:
    """One line per lock, plain text (the terminal reads no Slack markup)."""
    since = f"{lock.since:%Y-%m-%d %H:%M} UTC"
    what = (
        f"{lock.function}:{lock.alias}"
        if lock.version is None
        else f"v{lock.version} of {lock.function}:{lock.alias}"
    )
    by = f" by {lock.locked_by}" if lock.version is None else ""
    return f"locked: {what}{by} since {since}: {lock.reason}"


def _confirmed(
    console: Console, yes: bool, service: CanaryService, d: Deployment, after: str, verb: str
) -> bool:
    """Show the alias now → after and ask, unless --yes."""
    if yes:
        return True
    console.say(f"{verb} {d.key}: {service.read_alias(d.function, d.alias).describe()} → {after}")
    if console.confirm(f"{verb}?"):
        return True
    console.warn("not confirmed: nothing changed")
    return False


# ---------------------------------------------------------------- plain-text rendering
def render_preflight(report: PreflightReport, indent: str = "") -> str:
    lines = [f"{indent}{report.summary()}"]
    lines += [f"{indent}  {r.line()}" for r in report.results]
    if report.overridden_by:
        lines.append(f"{indent}  overridden by {report.overridden_by}: {report.override_reason}")
    return "\n".join(lines)


def render_plan(plan: StartPlan) -> str:
    d, policy = plan.deployment, plan.policy
    new = ""
    if plan.published is not None:
        changed = (
            ", ".join(f"{k} {'unset' if v is None else 'set'}" for k, v in d.changes.items()) or "no changes"
        )
        new = f" (new: {changed})"
    steps = " → ".join(format_percent(s) for s in d.steps)
    rules = threshold_sentence(threshold_rules(policy.thresholds)) or "no thresholds set"
    lines = [
        f"Canary plan · {d.key}  ({d.id})",
        f"  Now       {plan.alias_now.describe()}",
        f"  After     {plan.after}{new}",
        f"  Steps     {steps}, soak {format_duration(d.soak)} each, "
        f"report every {format_duration(policy.report_every)}",
        f"  Rollback  {sequential_rule(policy)}"
        if policy.judge == "sequential"
        else f"  Rollback  {policy.on_breach} if {rules} "
        f"for {policy.evaluation_periods} × {format_duration(policy.period)}",
        f"  Approvers {', '.join(policy.approvers) or '(none listed)'}"
        + ("  · two-person rule" if policy.two_person_rule else ""),
    ]
    if plan.alarm_rollback_off:
        lines.append(f"  Alarms    {alarm_rollback_off_line(plan.alarm_rollback_off)}")
    if plan.alarms_overridden:
        lines.append(f"  Override  alarms in ALARM: {', '.join(plan.alarms_overridden)}")
    if plan.preflight is not None:
        lines.append(render_preflight(plan.preflight, indent="  "))
    return "\n".join(lines)


def render_status(entries: list[StatusEntry]) -> str:
    if not entries:
        return "no live canaries"
    lines = []
    for e in entries:
        d = e.deployment
        alias = e.alias.describe() if e.alias else f"(alias unreadable: {e.alias_error})"
        ends = f" · soak ends {d.soak_ends_at:%H:%M} UTC" if d.soak_ends_at else ""
        verdict = f" · last check: {d.last_verdict}" if d.last_verdict else ""
        lines.append(
            f"{d.key}  {d.state.value.replace('_', ' ')}  v{d.canary_version} at {format_percent(d.weight)}"
            f"{ends}{verdict}"
        )
        lines.append(f"  alias now: {alias}   ({d.id}, started by {d.created_by})")
    return "\n".join(lines)


def render_history(history: list[HistoryEntry]) -> str:
    if not history:
        return "no canaries yet"
    lines = []
    for h in history:
        d = h.deployment
        lines.append(
            f"{d.id}  {d.key}  v{d.stable_version} → v{d.canary_version}  {d.state.value}"
            + (f"  ({d.reason})" if d.reason else "")
        )
        for r in h.audit:
            if r.phase == "intent":
                continue
            move = (
                f" {r.from_state.value if r.from_state else '-'} → {r.to_state.value if r.to_state else '-'}"
            )
            why = f"  — {r.reason}" if r.reason else ""
            lines.append(
                f"  {r.at:%Y-%m-%d %H:%M:%S} UTC  {r.action:<15} {r.phase:<6} by {r.actor}{move}{why}"
            )
    return "\n".join(lines)
