"""The pre-deployment checklist in Slack: one line per check, ✅ / 🔴 / ⚠️ with its evidence."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block, SectionBlock

from bot.preflight import PreflightReport
from bot.views.kit import context, render, section
from bot.views.text import escape, who


def preflight_section(report: PreflightReport) -> SectionBlock:
    """The checks as one section (the start preview and the preflight answer share it). What AWS says (names,
    endpoints, reasons) is escaped like anything typed."""
    lines = [f"*Preflight* · {escape(report.summary())}"]
    lines += [f"{r.icon} *{escape(r.title)}*: {escape(r.evidence)}" for r in report.results]
    if report.overridden_by:
        lines.append(f"🔓 Overridden by {who(report.overridden_by)}: {escape(report.override_reason or '')}")
    return section("\n".join(lines))


def preflight_blocks(report: PreflightReport, *, refused: bool = False) -> list[dict[str, Any]]:
    """The answer to /canary preflight, or to a start the checklist refused."""
    blocks: list[Block | None] = [preflight_section(report)]
    if refused:
        blocks.append(
            context(
                "Start refused: a 🔴 check blocks it. Nothing was changed. An approver may start anyway with "
                "`--override-preflight REASON` (audited)."
            )
        )
    elif report.failed:
        blocks.append(context("A 🔴 check would block `start` (an approver may override it with a reason)."))
    else:
        blocks.append(context("Nothing blocks a start. ⚠️ means the check could not tell; read its evidence."))
    return render(blocks)
