"""Ephemeral answers that lead to a click: the start preview, promote / rollback prompts, the reason modal."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from slack_sdk.models.blocks import Block, InputBlock, PlainTextInputElement, PlainTextObject
from slack_sdk.models.views import View

from bot.config import FunctionPolicy
from bot.judge import SUGGESTED_PASS, PlanPower, format_bound, format_confidence, plan_power
from bot.model import AliasState, Deployment
from bot.service import PLAN_TTL, StartPlan
from bot.views.ids import (
    ACTION_PROMOTE,
    ACTION_ROLLBACK,
    ACTION_START_CANCEL,
    ACTION_START_CONFIRM,
    BLOCK_ROLLBACK_REASON,
    CALLBACK_ROLLBACK_REASON,
    INPUT_ROLLBACK_REASON,
    button_value,
)
from bot.views.kit import actions, button, confirm, context, render, section
from bot.views.parent import alarm_rollback_off_line
from bot.views.preflight import preflight_section
from bot.views.text import (
    WARN,
    clip,
    escape,
    mention,
    percent,
    relative,
    span,
    state_word,
    threshold_rules,
    threshold_sentence,
    when,
    who,
)

REASON_MAX = 500


def preview_blocks(
    plan: StartPlan, *, now: datetime, stable_per_minute: float | None = None
) -> list[dict[str, Any]]:
    """What /canary start shows before anything changes: now → after, soak, rollback rule, who approves, and
    (judge: sequential) what the soak can prove, from the stable's recent invocations a minute."""
    d, policy = plan.deployment, plan.policy
    lines = [
        f"*Canary plan · {d.key}*",
        f"*Now*  {plan.alias_now.describe()}",
        f"*After*  {plan.after}{_news(plan)}",
        f"*Soak*  {_soak_line(d, policy)}",
        f"*Rollback*  {_rollback_rule(policy)}",
    ]
    power = None
    if policy.judge == "sequential" and policy.thresholds.error_rate is not None:
        power = (
            plan_power(policy, weight=d.steps[0], soak=d.soak, stable_per_minute=stable_per_minute)
            if stable_per_minute
            else None
        )
        lines.append(f"*Evidence*  {evidence_line(power, d, stable_per_minute)}")
    if plan.alarm_rollback_off:
        lines.append(alarm_rollback_off_line(plan.alarm_rollback_off))
    blocks: list[Block | None] = [section("\n".join(lines))]
    if power is not None and not power.can_pass:
        blocks.append(section(f"{WARN} {cannot_judge(power, d)}"))
    if plan.preflight is not None:
        blocks.append(preflight_section(plan.preflight))
    if plan.alarms_overridden:
        firing = ", ".join(f"`{escape(name)}`" for name in plan.alarms_overridden)
        blocks.append(section(f"{WARN} Starting although these alarms are in ALARM (override): {firing}"))
    blocks.append(
        actions(
            [
                button("Start canary", ACTION_START_CONFIRM, button_value(d), style="primary"),
                button("Cancel", ACTION_START_CANCEL, button_value(d)),
            ]
        )
    )
    blocks.append(
        context(
            f"Planned by {who(d.created_by)} · nothing changes until you press Start · "
            f"preview expires {when(d.created_at + PLAN_TTL, now)}"
        )
    )
    return render(blocks)


def _news(plan: StartPlan) -> str:
    """'(new: REDIS_URL set)': what the published version changes. Names only, values can be secrets."""
    if plan.published is None:
        return ""
    changes = plan.deployment.changes
    if not changes:
        return " (new: published from $LATEST)"
    parts = [f"{key} {'removed' if value is None else 'set'}" for key, value in sorted(changes.items())]
    return f" (new: {', '.join(parts)})"


def _soak_line(d: Deployment, policy: FunctionPolicy) -> str:
    steps = " → ".join(percent(w) for w in d.steps)
    soak = span(d.soak, coarse=True)
    how_long = f"{soak} at each of {steps}" if len(d.steps) > 1 else soak
    if policy.auto_promote:
        then = "then promote automatically"
    else:
        timeout = "roll back" if policy.on_approval_timeout == "rollback" else "hold"
        approvers = mention(policy.approvers) or "nobody listed"
        then = (
            f"then ask approvers ({approvers}); "
            f"no answer in {span(policy.approval_timeout, coarse=True)} → {timeout}"
        )
    return f"{how_long}, report every {span(policy.report_every, coarse=True)} · {then}"


def evidence_line(power: PlanPower | None, d: Deployment, stable_per_minute: float | None) -> str:
    """'~12,000 canary invocations at 5% for 1 h (stable: 3,800/min over the last hour): rolls back an error
    rate ≥ 0.29% 95% of the time; passes one ≤ 0.027%; in between it may end inconclusive …'."""
    if power is None:
        why = (
            "the stable version had no invocations in the last hour"
            if stable_per_minute == 0
            else "the stable's recent traffic is unknown"
        )
        return f"{why}: what this soak can prove is not estimated"
    level = format_confidence(power.confidence)
    first = f"{percent(d.steps[0])} for {span(d.soak, coarse=True)}"
    text = (
        f"~{power.canary_invocations:,.0f} canary invocations at {first} "
        f"(stable: {stable_per_minute or 0:,.0f}/min over the last hour): "
    )
    if power.detectable is not None:
        text += (
            f"rolls back an error rate ≥ {format_bound(power.detectable, upward=True)} {level} of the time"
        )
    else:
        text += "no error rate is sure to be rolled back"
    if power.passable is not None:
        text += (
            f"; passes one ≤ {format_bound(power.passable, upward=False)}; in between it may end inconclusive"
        )
    suggestion = _suggestion(power)
    if suggestion and power.can_pass:
        target = format_bound(SUGGESTED_PASS * power.threshold, upward=False)
        text += f" · to pass {target} use {suggestion}"
    return text


def cannot_judge(power: PlanPower, d: Deployment) -> str:
    level = format_confidence(power.confidence)
    text = (
        f"This plan cannot judge the error-rate threshold: even without a single error, "
        f"~{power.canary_invocations:,.0f} canary invocations cannot show < {percent(power.threshold)} "
        f"at {level} confidence (that needs {power.pass_needs:,.0f}); the soak will end inconclusive."
    )
    suggestion = _suggestion(power)
    return text + (
        f" To pass {format_bound(SUGGESTED_PASS * power.threshold, upward=False)}, use {suggestion}."
        if suggestion
        else ""
    )


def _suggestion(power: PlanPower) -> str:
    options = []
    if power.suggested_weight is not None:
        options.append(f"{percent(power.suggested_weight)} weight")
    if power.suggested_soak is not None:
        options.append(f"a {span(power.suggested_soak, coarse=True)} soak")
    return " or ".join(options)


def _rollback_rule(policy: FunctionPolicy) -> str:
    if policy.judge == "sequential":
        return sequential_rule(policy)
    rules = threshold_sentence(threshold_rules(policy.thresholds)) or "no thresholds set"
    window = f"{policy.evaluation_periods} × {span(policy.period, coarse=True)}"
    what = "automatic" if policy.on_breach == "rollback" else "alert approvers (no automatic rollback)"
    return (
        f"{what} if {rules} for {window}; periods under {policy.min_invocations:,} canary invocations "
        "count as no data"
    )


def sequential_rule(policy: FunctionPolicy) -> str:
    """The rollback rule of `judge: sequential` in words (the start preview, the CLI's plan)."""
    t, level = policy.thresholds, format_confidence(policy.confidence)
    what = "automatic" if policy.on_breach == "rollback" else "alert approvers (no automatic rollback)"
    counts = [(name, rule) for name, rule in threshold_rules(t) if name in ("error rate", "cache hit")]
    rest = [(name, rule) for name, rule in threshold_rules(t) if name not in ("error rate", "cache hit")]
    parts = []
    if counts:
        parts.append(
            f"{what} as soon as {threshold_sentence(counts)} is shown with {level} confidence "
            "(sequential test over the step's counts)"
        )
    if rest:
        window = f"{policy.evaluation_periods} × {span(policy.period, coarse=True)}"
        parts.append(
            f"{'' if counts else what + ' '}if {threshold_sentence(rest)} for {window} "
            "(a percentile from too few invocations is no data)"
        )
    return "; or ".join(parts) or "no thresholds set"


# ---------------------------------------------------------------- /canary promote | rollback
def action_prompt_blocks(
    d: Deployment,
    *,
    action: Literal["promote", "rollback"],
    alias: AliasState,
    now: datetime,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """The answer to `/canary promote fn` / `/canary rollback fn`: what changes, and one confirmed button.

    A rollback `reason` given on the command rides in the button's value (extra "reason"), so the click
    needs no modal; without one, the listener asks for it.
    """
    why = clip(reason.strip(), REASON_MAX) if reason and reason.strip() else None
    if action == "promote":
        target, after = f"v{d.canary_version}", f"100% v{d.canary_version}"
        title = f"*Promote {d.key} to {target}?*"
        press = button(
            f"Promote {target}",
            ACTION_PROMOTE,
            button_value(d),
            style="primary",
            ask=confirm(
                f"Promote {target} to 100%?",
                f"{d.key} will route all traffic to {target}.",
                yes=f"Promote {target}",
            ),
        )
    else:
        target, after = f"v{d.stable_version}", f"100% v{d.stable_version}"
        title = f"*Roll back {d.key} to {target}?*"
        press = button(
            f"Roll back to {target}",
            ACTION_ROLLBACK,
            button_value(d, reason=why) if why else button_value(d),
            style="danger",
            ask=confirm(
                f"Roll back to {target}?",
                f"{d.key} will route all traffic to {target}; v{d.canary_version} gets none.",
                yes="Roll back",
                style="danger",
            ),
        )
    lines = [title, f"*Now*  {alias.describe()}", f"*After*  {after}"]
    if action == "rollback" and why:
        lines.append(f"*Reason*  {escape(why)}")
    facts = [f"canary {state_word(d.state)}"]
    if d.step_started_at is not None:
        facts.append(f"step started {relative(d.step_started_at, now)}")
    if d.last_verdict:
        facts.append(f"last check: {d.last_verdict}")
    return render([section("\n".join(lines)), actions([press]), context(" · ".join(facts))])


def outcome_blocks(text: str) -> list[dict[str, Any]]:
    """What replaces the buttons after a click: 'Promoted by @x at 12:03 UTC'."""
    return render([section(text)])


def rollback_reason_modal(d: Deployment) -> dict[str, Any]:
    """Asks why before rolling back; the reason goes to the audit log and the status-page text."""
    view = View(
        type="modal",
        callback_id=CALLBACK_ROLLBACK_REASON,
        private_metadata=button_value(d),
        title=PlainTextObject(text=clip(f"Roll back v{d.canary_version}", 24)),
        submit=PlainTextObject(text="Roll back"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            section(f"Roll back *{d.key}* to *v{d.stable_version}*: all traffic leaves v{d.canary_version}."),
            InputBlock(
                block_id=BLOCK_ROLLBACK_REASON,
                label=PlainTextObject(text="Why?"),
                hint=PlainTextObject(text="Goes into the audit log and the rollback messages."),
                element=PlainTextInputElement(
                    action_id=INPUT_ROLLBACK_REASON,
                    multiline=True,
                    max_length=REASON_MAX,
                    placeholder=PlainTextObject(text="e.g. errors in the logs of v" + d.canary_version),
                ),
            ),
        ],
    )
    return view.to_dict()
