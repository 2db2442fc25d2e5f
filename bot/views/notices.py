"""Thread messages about what happened: traffic changes, state notes (hold, drift …) and CloudWatch alarms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.comms import (
    WATCH_CHECK_IN_EVERY,
    RollbackCause,
    fallback_internal_message,
    internal_message,
    post_deployment_summary,
    rollback_cause,
    status_page_text,
)
from bot.config import FunctionPolicy
from bot.events import AlarmAlert, StateNoted, TrafficChanged
from bot.model import Deployment, State
from bot.views.kit import code, context, fields, render, section
from bot.views.text import (
    BREACH,
    HELD,
    PASS,
    WARN,
    clip,
    clock,
    escape,
    is_bot,
    mention,
    percent,
    precise_clock,
    seconds_between,
    span,
    state_word,
    when,
    who,
)

ALARM_MARK = "🚨"
RESUMED_MARK = "▶️"
EXTENDED_MARK = "⏱"
STEP_MARK = "⏫"
WEIGHT_MARK = "↕️"
REASON_MAX = 500


# ---------------------------------------------------------------- traffic
def traffic_changed_blocks(
    event: TrafficChanged, *, policy: FunctionPolicy, now: datetime
) -> list[dict[str, Any]]:
    d, by = event.deployment, who(event.actor, event.actor_mention)
    after = event.alias_after.describe()
    before = f"was {event.alias_before.describe()}" if event.alias_before else ""
    c, s = f"v{d.canary_version}", f"v{d.stable_version}"
    if event.action == "promoted":
        summary = post_deployment_summary(
            d,
            figures=event.figures,
            now=now,
            thresholds=policy.thresholds,
            min_invocations=policy.min_invocations,
            service_name=policy.service_name,
            watch=policy.watch_after_promote,
        )
        watch = f"keep watching for {span(policy.watch_after_promote, coarse=True)}"
        if d.watch_until is not None and d.ended_at is not None:
            watch = (
                f"canary-bot will keep watching for {span(d.watch_until - d.ended_at, coarse=True)}: "
                f"check-ins every {span(WATCH_CHECK_IN_EVERY, coarse=True)}, post-mortem {when(d.watch_until, now)}"
            )
        return render(
            [
                section(f"*{PASS} Promoted {d.key} to {c} by {by} · alias now {after}*"),
                context(when(event.at, now), before, watch),
                code(summary, title="Post-deployment summary (copy into the review doc)"),
            ]
        )
    if event.action in ("rolled_back", "reverted"):
        return _rolled_back(event, policy=policy, now=now)
    if event.action == "fallback":
        return _fallback(event, policy=policy, now=now)
    if event.action == "weight":
        ends = f"soak restarts, ends {clock(d.soak_ends_at)}" if d.soak_ends_at else ""
        text = f"{WEIGHT_MARK} {by} set canary {c} to {percent(d.weight)} · alias now {after}"
        return render([section(text), context(when(event.at, now), before, ends)])
    step = f"Step {d.step_index + 1}/{len(d.steps)}"
    ends = f"soak ends {clock(d.soak_ends_at)}" if d.soak_ends_at else ""
    why = f"previous step: {escape(event.reason)}" if event.reason else ""
    text = f"{STEP_MARK} {step}: canary {c} now at {percent(d.weight)} · alias now {after} (stable {s})"
    return render([section(text), context(when(event.at, now), why, ends)])


def _rolled_back(event: TrafficChanged, *, policy: FunctionPolicy, now: datetime) -> list[dict[str, Any]]:
    d = event.deployment
    reason = event.reason or d.reason or "no reason given"
    automatic = event.automatic or is_bot(event.actor)
    how = "automatic" if automatic else "manual"
    by = f"by {who(event.actor, event.actor_mention)} ({how})"
    if event.detected_at is not None:
        reverted = event.reverted_at or event.at
        timing = (
            f"Detected {precise_clock(event.detected_at)} · alias reverted {precise_clock(reverted)} "
            f"({seconds_between(event.detected_at, reverted)}) · {by}"
        )
    else:
        timing = f"Reverted {clock(event.at, seconds=True)} · {by}"
    cause = rollback_cause(reason, automatic=automatic, cause=d.cause)
    people = f" {mention(policy.approvers)}" if policy.approvers else ""
    done = "Reverted the promotion of" if event.action == "reverted" else "Rolled back"
    lines = [
        f"*{BREACH} {done} {d.key} to v{d.stable_version} — {escape(clip(reason, REASON_MAX))}*",
        timing,
        f"Next: {_next(cause, d, who(event.actor, event.actor_mention))}; the alias stays "
        f"{event.alias_after.describe()} until a new canary starts.{people}",
    ]
    name = policy.service_name
    internal = internal_message(d, reason=reason, service_name=name, now=now, automatic=automatic)
    public = status_page_text(d, reason=reason, service_name=name, now=now, automatic=automatic)
    return render(
        [
            section("\n".join(lines)),
            code(internal, title="Internal message to copy"),
            code(public, title="Status-page text"),
        ]
    )


def _fallback(event: TrafficChanged, *, policy: FunctionPolicy, now: datetime) -> list[dict[str, Any]]:
    """The seed's emergency fallback, announced with its internal and status-page texts."""
    d = event.deployment
    reason = event.reason or d.reason or "emergency fallback"
    by = who(event.actor, event.actor_mention)
    gone = ", ".join(d.changes) or "nothing"
    lines = [
        f"*{BREACH} Emergency fallback on {d.key}: v{d.canary_version} takes 100% — "
        f"{escape(clip(reason, REASON_MAX))}*",
        f"v{d.canary_version} is v{d.stable_version}'s code without {escape(gone)} · "
        f"alias {event.alias_after.describe()} · {clock(event.at, seconds=True)} · by {by}",
        f"Next: find out why, then `/canary revert {d.function} --reason TEXT` goes back to v{d.stable_version}"
        + (f" {mention(policy.approvers)}" if policy.approvers else ""),
    ]
    name = policy.service_name
    internal = fallback_internal_message(d, reason=reason, service_name=name)
    public = status_page_text(d, reason=reason, service_name=name, now=now, automatic=False)
    return render(
        [
            section("\n".join(lines)),
            code(internal, title="Internal message to copy"),
            code(public, title="Status-page text"),
        ]
    )


def _next(cause: RollbackCause, d: Deployment, by: str) -> str:
    """'root cause analysis of v2' · 'Redis debugging for v2' · '… of v2 with @joe, who rolled it back'."""
    c = f"v{d.canary_version}"
    if cause.kind == "manual":
        return f"root cause analysis of {c} with {by}, who rolled it back"
    if cause.kind == "cache":
        return f"Redis debugging for {c}"
    return f"root cause analysis of {c}"


# ---------------------------------------------------------------- state notes
def state_noted_blocks(
    event: StateNoted, *, now: datetime, approvers: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Held, resumed, extended, cancelled, drift. `approvers` are mentioned on drift (people must look)."""
    d, by = event.deployment, who(event.actor, event.actor_mention)
    reason = escape(clip(event.reason, REASON_MAX)) if event.reason else ""
    c = f"v{d.canary_version}"
    match event.what:
        case "held":
            text = f"{HELD} Held by {by}{f': {reason}' if reason else ''}"
            note = f"traffic stays {percent(d.weight)} on {c} · no automatic step, promotion or timeout"
        case "resumed":
            text = f"{RESUMED_MARK} Resumed by {by} · canary {state_word(d.state)}"
            note = f"soak ends {when(d.soak_ends_at, now)}" if d.soak_ends_at else ""
        case "extended":
            text = f"{EXTENDED_MARK} Soak extended by {by}{f': {reason}' if reason else ''}"
            note = f"now ends {when(d.soak_ends_at, now)}" if d.soak_ends_at else ""
        case "cancelled":
            text = f"Plan cancelled by {by}{f': {reason}' if reason else ''}"
            note = "the alias was not touched"
        case "drift":
            outcome = {
                State.HELD: "canary held",
                State.CANCELLED: "plan cancelled",
                State.ROLLING_BACK: "rollback stopped, nothing written",
            }.get(d.state, f"canary {d.state.value}")
            text = f"{BREACH} *{d.key}: alias changed outside canary-bot — {outcome}*\n{reason}"
            people = f"{mention(approvers)}: " if approvers else ""
            note = f"{people}find who changed it (CloudTrail UpdateAlias), then resume or roll back"
        case "stuck":
            text = f"{BREACH} *{d.key}: a traffic change is not going through*\n{reason}"
            people = f"{mention(approvers)}: " if approvers else ""
            note = f"{people}check AWS (throttling, permissions, an outage); no need to click again"
        case "metrics":
            text = f"{WARN} *{d.key}: metrics are failing*\n{reason}"
            note = "periods without figures are no data, never a pass; the soak cannot pass on them"
        case _:
            text = f"{WARN} {d.key}: {reason}"
            note = ""
    return render([section(text), context(when(event.at, now), note)])


# ---------------------------------------------------------------- alarms
def alarm_blocks(event: AlarmAlert, *, policy: FunctionPolicy | None, now: datetime) -> list[dict[str, Any]]:
    """The seed's '🚨 Canary Deployment Alert' fields, plus what canary-bot did about it."""
    state = event.state.upper()
    cells = [
        ("Alarm", escape(event.alarm_name)),
        ("State", escape(state)),
        ("Reason", escape(clip(event.reason, 1900))),
    ]
    if event.function:
        cells.append(("Function", event.function))
    if state == "OK":
        return render(
            [
                section(f"{PASS} Alarm back to OK: `{event.alarm_name}`"),
                fields(cells),
                context(when(event.at, now)),
            ]
        )
    mark = ALARM_MARK if state == "ALARM" else WARN
    approvers = event.approvers or (policy.approvers if policy else ())
    # After an automatic rollback the rollback message itself mentioned the approvers: not twice.
    mentioned = event.follow_up or event.rolled_back
    people = f" · {mention(approvers)}" if approvers and state == "ALARM" and not mentioned else ""
    return render(
        [
            section(f"*{mark} Canary Deployment Alert*"),
            fields(cells),
            section(_alarm_action(event, policy) + people),
            context(when(event.at, now)),
        ]
    )


def _alarm_action(event: AlarmAlert, policy: FunctionPolicy | None) -> str:
    d = event.deployment
    if event.rolled_back and d is not None:
        start, end = event.received_at, event.reverted_at
        timing = (
            f": notification {precise_clock(start)} → alias reverted {precise_clock(end)} "
            f"({seconds_between(start, end)})"
            if start is not None and end is not None
            else ""
        )
        return f"{BREACH} Rolled back {d.key} to v{d.stable_version} automatically{timing}"
    if d is None:
        return "No live canary: alert only, nothing changed"
    if not d.is_live:
        return f"Canary v{d.canary_version} is already {state_word(d.state)}: nothing changed"
    if event.state.upper() != "ALARM":
        return f"Canary v{d.canary_version} left at {percent(d.weight)}: alarm has no data yet"
    if policy is not None and policy.on_breach == "alert":
        why = "policy: alert only"
    elif d.state is State.HELD:
        why = "the canary is held"
    else:
        why = "not rolled back"
    return (
        f"{WARN} Canary v{d.canary_version} still takes {percent(d.weight)} ({why}): "
        f"roll back with `/canary rollback {d.function}` if this is the canary"
    )
