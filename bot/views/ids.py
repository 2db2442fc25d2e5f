"""Identifiers shared with the Bolt listeners: action ids, the modal's ids, and what a button carries."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.model import Deployment

ACTION_START_CONFIRM = "canary_start_confirm"
ACTION_START_CANCEL = "canary_start_cancel"
ACTION_PROMOTE = "canary_promote"
ACTION_ROLLBACK = "canary_rollback"
ACTION_EXTEND = "canary_extend"
ACTION_HOLD = "canary_hold"
ACTION_RESUME = "canary_resume"
ACTION_REVERT = "canary_revert"
ACTION_FALLBACK = "canary_fallback"
# A fallback button refers to no deployment yet: this stands in for the id (its revision is 0).
FALLBACK_BUTTON_ID = "fallback"
CALLBACK_ROLLBACK_REASON = "canary_rollback_reason"
BLOCK_ROLLBACK_REASON = "reason"
INPUT_ROLLBACK_REASON = "reason_input"

# The [Extend 30 min] button; its value carries "by" so the listener need not know this number.
EXTEND_BY = timedelta(minutes=30)

# What a deployment id can look like ("d-20240501-1a2b3c"): anything else in a button is not ours.
_DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")

# Slack's limit on a button's value (and well under private_metadata's 3000).
BUTTON_VALUE_MAX = 2000


class ButtonRef(BaseModel):
    """What a click refers to: the deployment, the revision it was rendered at (stale clicks are refused)."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    revision: int
    extra: dict[str, Any] = Field(default_factory=dict)


def button_value(d: Deployment, /, **extra: Any) -> str:
    """Compact JSON {"d": id, "r": revision, ...extra}; ValueError when it would not fit a button."""
    clash = {"d", "r"} & extra.keys()
    if clash:
        raise ValueError(f"button extra cannot use reserved keys {sorted(clash)}")
    value = json.dumps({"d": d.id, "r": d.revision, **extra}, separators=(",", ":"), ensure_ascii=False)
    if len(value) > BUTTON_VALUE_MAX:
        raise ValueError(f"button value is {len(value)} characters, Slack allows {BUTTON_VALUE_MAX}")
    return value


def parse_button_value(value: str) -> ButtonRef:
    """The inverse of button_value; ValueError on anything else (a forged or foreign payload)."""
    try:
        data = json.loads(value)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a canary-bot button value: {value!r:.80}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"not a canary-bot button value: {value!r:.80}")
    deployment_id, revision = data.pop("d", None), data.pop("r", None)
    if not isinstance(deployment_id, str) or not _DEPLOYMENT_ID.fullmatch(deployment_id):
        raise ValueError("button value has no valid deployment id")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise ValueError("button value has no valid revision")
    return ButtonRef(deployment_id=deployment_id, revision=revision, extra=data)
