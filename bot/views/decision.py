"""Messages that ask people to decide: approval wanted, inconclusive soak, breach alert, approval time-out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from slack_sdk.models.blocks import ButtonElement

from bot import canary
from bot.config import FunctionPolicy
from bot.model import Deployment, State
from bot.units import format_duration
from bot.views.ids import (
    ACTION_EXTEND,
    ACTION_HOLD,
    ACTION_PROMOTE,
    ACTION_RESUME,
    ACTION_ROLLBACK,
    EXTEND_BY,
    button_value,
)
from bot.views.kit import actions, button, confirm, context, render, section
from bot.views.text import BREACH, HELD, PASS, WARN, clock, mention, percent, span, when, who

Why = Literal["approval", "inconclusive", "breach_alert", "approval_timeout"]
Choice = Literal["promote", "extend", "hold", "resume", "rollback"]

TIMEOUT_MARK = "⏰"


def decision_blocks(
    d: Deployment,
    *,
    why: Why,
    reason: str,
    approvers: tuple[str, ...],
    deadline: datetime | None,
    policy: FunctionPolicy,
    now: datetime,
) -> list[dict[str, Any]]:
    c = f"v{d.canary_version}"
    asked = mention(approvers) or "Approvers (none listed in the policy)"
    if why == "approval":
        lines = [
            f"*{PASS} Soak passed for {c} ({span(d.soak, coarse=True)} at {percent(d.weight)})"
            " — approval needed*",
            _sentence(reason),
            f"{asked}: promote {c} to 100%?{_two_person(d, policy)}",
        ]
        then = "rolls back" if policy.on_approval_timeout == "rollback" else "holds"
        expiry = f"expires {when(deadline, now)} → {then}" if deadline else ""
        choices: tuple[Choice, ...] = ("promote", "extend", "rollback")
        return render([section("\n".join(lines)), actions(control_buttons(d, choices)), context(expiry)])
    if why == "inconclusive":
        offered = _offered(d, ("extend", "hold", "resume", "rollback", "promote"))
        lines = [
            f"*{WARN} Soak inconclusive for {c} — it will not be promoted on this evidence*",
            _sentence(reason),
            f"{asked}: {_question(offered, unproven=True)} "
            f"Traffic stays {percent(d.weight)} on {c} meanwhile.",
        ]
        return render([section("\n".join(lines)), actions(control_buttons(d, offered, unproven=True))])
    if why == "breach_alert":
        held = " (held canaries only alert)" if d.state is State.HELD else " (policy: alert only)"
        lines = [
            f"*{BREACH} Canary {c} breaches its thresholds — not rolled back automatically{held}*",
            _sentence(reason),
            f"{asked}: roll back {c}? It still takes {percent(d.weight)} of {d.key}.",
        ]
        return render([section("\n".join(lines)), actions(control_buttons(d, ("rollback", "hold")))])
    return _timeout_blocks(d, reason=reason, asked=asked, policy=policy, now=now)


def _timeout_blocks(
    d: Deployment, *, reason: str, asked: str, policy: FunctionPolicy, now: datetime
) -> list[dict[str, Any]]:
    c, s = f"v{d.canary_version}", f"v{d.stable_version}"
    by = f" by {clock(d.approval_deadline)}" if d.approval_deadline else ""
    if policy.on_approval_timeout == "rollback":
        lines = [
            f"*{TIMEOUT_MARK} No approval for {c}{by} — canary-bot is rolling back to {s}*",
            _sentence(reason),
        ]
    else:
        lines = [
            f"*{HELD} No approval for {c}{by} — canary-bot held it at {percent(d.weight)}*",
            _sentence(reason),
            f"{asked}: promote, resume or roll back when ready; traffic is unchanged.",
        ]
    return render(
        [section("\n".join(lines)), context(f"policy: on approval timeout → {policy.on_approval_timeout}")]
    )


def _offered(d: Deployment, choices: tuple[Choice, ...]) -> tuple[Choice, ...]:
    """The choices the deployment's state allows: the question asks exactly what the buttons offer."""
    return tuple(choice for choice in choices if canary.can(d, _TRANSITION[choice]))


_ASKED: dict[Choice, str] = {
    "promote": "promote",
    "extend": f"extend the soak by {span(EXTEND_BY, coarse=True)}",
    "hold": "hold",
    "resume": "resume the soak",
    "rollback": "roll back",
}


def _question(choices: tuple[Choice, ...], *, unproven: bool = False) -> str:
    """'extend the soak by 30 min, resume the soak, roll back, or promote anyway?' (`unproven`: as the
    Promote button then reads)."""
    words = ["promote anyway" if unproven and choice == "promote" else _ASKED[choice] for choice in choices]
    if len(words) <= 2:
        return " or ".join(words) + "?"
    return ", ".join(words[:-1]) + f", or {words[-1]}?"


def _two_person(d: Deployment, policy: FunctionPolicy) -> str:
    if not policy.two_person_rule:
        return ""
    return f"  (starter {who(d.created_by)} cannot approve: two-person rule)"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else ""


def control_buttons(
    d: Deployment,
    choices: tuple[Choice, ...],
    *,
    may: Callable[[Choice], bool] | None = None,
    unproven: bool = False,
) -> list[ButtonElement]:
    """The buttons for `choices` that the state allows now and `may` (the viewer's rights) lets through.

    `unproven`: the soak did not prove the canary within its thresholds, so Promote reads "Promote anyway"
    and its confirmation says so.

    The click is checked again on the server: a button is a convenience, never the authorization.
    """
    c, s = f"v{d.canary_version}", f"v{d.stable_version}"
    value = button_value(d)
    make = {
        "promote": lambda: (
            button(
                f"Promote {c} anyway",
                ACTION_PROMOTE,
                value,
                ask=confirm(
                    f"Promote {c} unproven?",
                    f"The soak did not prove {c} within its thresholds. {d.key} will route all traffic to {c}.",
                    yes=f"Promote {c}",
                ),
            )
            if unproven
            else button(
                f"Promote {c}",
                ACTION_PROMOTE,
                value,
                style="primary",
                ask=confirm(
                    f"Promote {c} to 100%?", f"{d.key} will route all traffic to {c}.", yes=f"Promote {c}"
                ),
            )
        ),
        "extend": lambda: button(
            f"Extend {span(EXTEND_BY, coarse=True)}",
            ACTION_EXTEND,
            button_value(d, by=format_duration(EXTEND_BY)),
        ),
        "hold": lambda: button("Hold", ACTION_HOLD, value),
        "resume": lambda: button("Resume", ACTION_RESUME, value),
        "rollback": lambda: button(
            "Roll back",
            ACTION_ROLLBACK,
            value,
            style="danger",
            ask=confirm(
                f"Roll back {c}?",
                f"{d.key} goes back to 100% {s}; {c} gets no traffic.",
                yes="Roll back",
                style="danger",
            ),
        ),
    }
    return [
        make[choice]()
        for choice in choices
        if canary.can(d, _TRANSITION[choice]) and (may is None or may(choice))
    ]


_TRANSITION: dict[Choice, str] = {
    "promote": "promote",
    "extend": "extend",
    "hold": "hold",
    "resume": "resume",
    "rollback": "begin_rollback",
}
