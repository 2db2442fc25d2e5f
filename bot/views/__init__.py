"""Everything canary-bot says in Slack, as Block Kit built with slack_sdk's models (limits checked on build).

Every builder is pure: `now` comes in, validated `list[dict]` (or a view dict) comes out. Wording follows
/work/shared/UX.md: what happened, good or bad, what to do; numbers with units and thresholds; UTC times with
relative time; ✅ pass · ⚠️ no data / inconclusive · 🔴 breach / rolled back · ⏸ held.
"""

from bot.views.decision import control_buttons, decision_blocks
from bot.views.ids import (
    ACTION_EXTEND,
    ACTION_FALLBACK,
    ACTION_HOLD,
    ACTION_PROMOTE,
    ACTION_RESUME,
    ACTION_REVERT,
    ACTION_ROLLBACK,
    ACTION_START_CANCEL,
    ACTION_START_CONFIRM,
    BLOCK_ROLLBACK_REASON,
    CALLBACK_ROLLBACK_REASON,
    EXTEND_BY,
    INPUT_ROLLBACK_REASON,
    ButtonRef,
    button_value,
    parse_button_value,
)
from bot.views.lists import (
    error_blocks,
    help_blocks,
    history_blocks,
    home_view,
    refusal_blocks,
    status_blocks,
)
from bot.views.notices import alarm_blocks, state_noted_blocks, traffic_changed_blocks
from bot.views.parent import headline, parent_blocks, parent_text
from bot.views.plan import action_prompt_blocks, outcome_blocks, preview_blocks, rollback_reason_modal
from bot.views.preflight import preflight_blocks
from bot.views.report import soak_report_blocks
from bot.views.text import escape, mention, who
from bot.views.watch import post_mortem_blocks, watch_alert_blocks, watch_check_in_blocks

__all__ = [
    "ACTION_EXTEND",
    "ACTION_FALLBACK",
    "ACTION_HOLD",
    "ACTION_PROMOTE",
    "ACTION_RESUME",
    "ACTION_REVERT",
    "ACTION_ROLLBACK",
    "ACTION_START_CANCEL",
    "ACTION_START_CONFIRM",
    "BLOCK_ROLLBACK_REASON",
    "CALLBACK_ROLLBACK_REASON",
    "EXTEND_BY",
    "INPUT_ROLLBACK_REASON",
    "ButtonRef",
    "action_prompt_blocks",
    "alarm_blocks",
    "button_value",
    "control_buttons",
    "decision_blocks",
    "error_blocks",
    "escape",
    "headline",
    "help_blocks",
    "history_blocks",
    "home_view",
    "mention",
    "outcome_blocks",
    "parent_blocks",
    "parent_text",
    "parse_button_value",
    "post_mortem_blocks",
    "preflight_blocks",
    "preview_blocks",
    "refusal_blocks",
    "rollback_reason_modal",
    "soak_report_blocks",
    "state_noted_blocks",
    "status_blocks",
    "traffic_changed_blocks",
    "watch_alert_blocks",
    "watch_check_in_blocks",
    "who",
]
