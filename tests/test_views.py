"""Block Kit views: every message validates with slack_sdk and says what UX.md asks, with the right marks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any, get_args

import pytest

from bot.config import FunctionPolicy, load_policy
from bot.events import AlarmAlert, PostMortem, StateNoted, TrafficChanged, WatchAlert, WatchCheckIn
from bot.evidence import upper_bound
from bot.judge import format_bound, judge_period, judge_step, plan_power
from bot.model import AliasState, AuditRecord, Deployment, PeriodFigures, State
from bot.ports import PublishedVersion
from bot.service import HistoryEntry, StartPlan, StatusEntry
from bot.views import (
    ACTION_EXTEND,
    ACTION_HOLD,
    ACTION_PROMOTE,
    ACTION_RESUME,
    ACTION_ROLLBACK,
    ACTION_START_CANCEL,
    ACTION_START_CONFIRM,
    BLOCK_ROLLBACK_REASON,
    CALLBACK_ROLLBACK_REASON,
    INPUT_ROLLBACK_REASON,
    action_prompt_blocks,
    alarm_blocks,
    button_value,
    decision_blocks,
    error_blocks,
    help_blocks,
    history_blocks,
    home_view,
    mention,
    outcome_blocks,
    parent_blocks,
    parent_text,
    parse_button_value,
    post_mortem_blocks,
    preview_blocks,
    refusal_blocks,
    rollback_reason_modal,
    soak_report_blocks,
    state_noted_blocks,
    status_blocks,
    traffic_changed_blocks,
    watch_alert_blocks,
    watch_check_in_blocks,
)
from bot.views.decision import Why
from bot.views.text import when
from tests.support.block_kit import assert_valid_message, assert_valid_view, button, buttons_of, text_of
from tests.support.canary_core import PERIOD, T0, in_state, period, version

NOW = T0 + timedelta(minutes=32)


def _seed_policy() -> FunctionPolicy:
    found = load_policy(None).for_function("production-lego-api")
    assert found is not None
    return found


POLICY = _seed_policy()
STARTER = "slack:U0MARIA (maria)"
SPLIT = AliasState(
    function="production-lego-api", alias="production", version="41", weights={"42": 0.05}, revision_id="r2"
)
STABLE_ONLY = AliasState(function="production-lego-api", alias="production", version="41", revision_id="r3")
PROMOTED_ALIAS = AliasState(
    function="production-lego-api", alias="production", version="42", revision_id="r4"
)
Blocks = list[dict[str, Any]]


def deployment(state: State = State.CANARY, **update: Any) -> Deployment:
    return in_state(state, steps=(0.05,)).model_copy(update={"created_by": STARTER, "revision": 7, **update})


def soak(n: int = 6, **canary: Any) -> list[PeriodFigures]:
    """n healthy 5-minute periods from T0; `canary` overrides the canary figures of the last one."""
    figures = [period(T0 + PERIOD * i) for i in range(n)]
    if canary:
        figures[-1] = period(T0 + PERIOD * (n - 1), canary=version("42", **canary))
    return figures


def policy(**overrides: Any) -> FunctionPolicy:
    return POLICY.model_copy(update=overrides)


def report(figures: list[PeriodFigures], d: Deployment | None = None, **policy_overrides: Any) -> Blocks:
    p = policy(**policy_overrides)
    verdicts = [judge_period(f, p.thresholds, min_invocations=p.min_invocations) for f in figures]
    return soak_report_blocks(
        d or deployment(), number=2, total=4, figures=figures, verdicts=verdicts, policy=p, now=NOW
    )


def sequential_report(figures: list[PeriodFigures]) -> Blocks:
    p = policy(judge="sequential")
    verdicts = judge_step(figures, p, looks=12)
    return soak_report_blocks(
        deployment(), number=2, total=4, figures=figures, verdicts=verdicts, policy=p, now=NOW
    )


def table_row(blocks: Blocks, label: str) -> str:
    table = next(b["text"]["text"] for b in blocks if b["type"] == "section" and "```" in b["text"]["text"])
    rows = [line for line in table.strip("`").splitlines() if line.startswith(label + " ")]
    assert len(rows) == 1, f"no single {label!r} row in:\n{table}"
    return str(rows[0])


def test_sequential_report_shows_each_count_with_its_bound_and_what_it_proves() -> None:
    figures = [
        period(T0 + i * PERIOD, canary=version("42", invocations=1000, errors=e))
        for i, e in enumerate([1, 0, 1])
    ]
    blocks = sequential_report(figures)
    assert_valid_message(blocks)

    bound = format_bound(upper_bound(2, 3000, 0.95), upward=True)
    errors = table_row(blocks, "errors")
    assert f"0.067% (≤ {bound} at 95%)" in errors and errors.endswith("⚠️")  # not yet known
    hit = table_row(blocks, "cache hit")
    assert "94% (≥ 9" in hit and hit.endswith("✅")
    assert "p95 ≥ 200, p99 ≥ 1,000/5 min" in table_row(blocks, "invocations")
    text = text_of(blocks)
    assert "errors and cache hit are totals, with their one-sided 95% bound" in text
    # Why the last period is not a clean pass: the error rate is not yet known.
    assert "not yet known after 3,000 invocations" in text


def test_sequential_report_says_why_a_percentile_was_no_data() -> None:
    figures = [period(T0, canary=version("42", invocations=600, p99_ms=320.0))]
    text = text_of(sequential_report(figures))

    assert "p99 320 ms > 300 ms: 600 invocations < 1,000 needed for a p99" in text


def test_home_view_and_reason_modal_validate_as_slack_views() -> None:
    entries = [StatusEntry(deployment=deployment(s), alias=SPLIT) for s in (State.CANARY, State.HELD)]
    assert_valid_view(home_view(entries, now=NOW, can_act=lambda d, a: True))
    assert_valid_view(home_view([], now=NOW, can_act=lambda d, a: True))
    assert_valid_view(rollback_reason_modal(deployment()))


def test_huge_texts_are_cut_to_slack_limits_instead_of_failing() -> None:
    essay = "the cache is cold " * 1000
    d = deployment(State.ROLLED_BACK, reason=essay)
    assert_valid_message(_traffic("rolled_back", d=d, reason=essay))
    assert_valid_message(error_blocks(essay, essay))
    assert_valid_message(help_blocks("\n\n".join([essay] * 80)))
    assert_valid_message(_noted("held", reason=essay))


def test_status_of_many_canaries_stays_within_the_block_limit() -> None:
    entries = [
        StatusEntry(deployment=deployment(function=f"fn-{i}", id=f"d-{i}"), alias=SPLIT) for i in range(40)
    ]
    blocks = status_blocks(entries, now=NOW)
    assert_valid_message(blocks)
    assert "more" in text_of(blocks)


# ---------------------------------------------------------------- preview
def test_preview_shows_alias_now_and_after_soak_and_rollback_thresholds() -> None:
    rules = policy(judge="threshold")
    plan = StartPlan(deployment=deployment(State.PLANNED), alias_now=STABLE_ONLY, policy=rules)
    text = text_of(preview_blocks(plan, now=NOW))
    assert "Canary plan · production-lego-api:production" in text
    assert "*Now*  100% v41" in text
    assert "*After*  95% v41 · 5% v42" in text
    assert "1 h, report every 15 min" in text
    assert "<!subteam^S0SREONCALL>" in text
    assert "error rate > 0.1%, p95 > 100 ms, p99 > 300 ms, cache hit < 80%" in text
    assert "for 2 × 5 min" in text


def test_preview_under_the_sequential_judge_states_the_rule_and_what_the_soak_can_prove() -> None:
    plan = StartPlan(deployment=deployment(State.PLANNED), alias_now=STABLE_ONLY, policy=policy())
    text = text_of(preview_blocks(plan, now=NOW, stable_per_minute=3800))

    assert (
        "automatic as soon as error rate > 0.1%, cache hit < 80% is shown with 95% confidence "
        "(sequential test over the step's counts); or if p95 > 100 ms, p99 > 300 ms, cache-miss p95 > 300 ms "
        "for 2 × 5 min (a percentile from too few invocations is no data)"
    ) in text
    power = plan_power(policy(), weight=0.05, soak=timedelta(hours=1), stable_per_minute=3800)
    assert power is not None and power.detectable is not None and power.passable is not None
    assert round(power.canary_invocations) == 12_000  # 3,800 a minute is 95% of the alias
    detect = format_bound(power.detectable, upward=True)
    passes = format_bound(power.passable, upward=False)
    assert (
        f"*Evidence*  ~12,000 canary invocations at 5% for 1 h (stable: 3,800/min over the last hour): "
        f"rolls back an error rate ≥ {detect} 95% of the time; passes one ≤ {passes}; "
        "in between it may end inconclusive · to pass 0.05% use "
    ) in text
    assert "cannot judge" not in text


def test_preview_warns_when_the_plan_cannot_judge_the_error_rate_at_all() -> None:
    plan = StartPlan(deployment=deployment(State.PLANNED), alias_now=STABLE_ONLY, policy=policy())
    # 30 invocations a minute: a 5% canary sees ~95 in an hour, and proving < 0.1% takes ~3,000.
    text = text_of(preview_blocks(plan, now=NOW, stable_per_minute=30))

    assert "This plan cannot judge the error-rate threshold: even without a single error, ~95 canary" in text
    assert "cannot show < 0.1% at 95% confidence (that needs 2,994); the soak will end inconclusive." in text


def test_preview_says_when_the_stable_traffic_is_unknown() -> None:
    plan = StartPlan(deployment=deployment(State.PLANNED), alias_now=STABLE_ONLY, policy=policy())
    text = text_of(preview_blocks(plan, now=NOW))

    assert (
        "*Evidence*  the stable's recent traffic is unknown: what this soak can prove is not estimated"
        in text
    )


def test_preview_names_published_changes_but_never_their_values() -> None:
    d = deployment(State.PLANNED, changes={"REDIS_URL": "redis://secret-host:6379", "OLD_FLAG": None})
    published = PublishedVersion(function=d.function, version="42", code_sha256="abc")
    plan = StartPlan(deployment=d, alias_now=STABLE_ONLY, policy=policy(), published=published)
    text = text_of(preview_blocks(plan, now=NOW))
    assert "(new: OLD_FLAG removed, REDIS_URL set)" in text
    assert "secret-host" not in text


def test_preview_warns_when_alarms_were_overridden() -> None:
    plan = StartPlan(
        deployment=deployment(State.PLANNED),
        alias_now=STABLE_ONLY,
        policy=policy(),
        alarms_overridden=("lego-api-5xx",),
    )
    assert "⚠️ Starting although these alarms are in ALARM (override): `lego-api-5xx`" in text_of(
        preview_blocks(plan, now=NOW)
    )


def test_preview_buttons_start_or_cancel_this_deployment() -> None:
    d = deployment(State.PLANNED)
    blocks = preview_blocks(StartPlan(deployment=d, alias_now=STABLE_ONLY, policy=policy()), now=NOW)
    start, cancel = button(blocks, ACTION_START_CONFIRM), button(blocks, ACTION_START_CANCEL)
    assert start["style"] == "primary"
    for pressed in (start, cancel):
        ref = parse_button_value(pressed["value"])
        assert (ref.deployment_id, ref.revision) == (d.id, d.revision)


# ---------------------------------------------------------------- parent
def test_parent_shows_the_soak_progress_and_the_last_check() -> None:
    figures = soak(6)
    last = judge_period(figures[-1], POLICY.thresholds, min_invocations=200)
    blocks = parent_blocks(deployment(), now=NOW, last=last, dashboard_url="https://dash.example/x")
    text = text_of(blocks)
    assert "🐤 production-lego-api:production — canary v42 at 5% · soaking" in text
    assert "█████████░░░░░░░  32 / 60 min" in text
    assert "last check 14:30 UTC ✅ all within thresholds" in text
    assert "Started by <@U0MARIA> · 14:00 UTC · thread for reports ↓" in text
    assert "<https://dash.example/x|dashboard>" in text


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (State.PLANNED, "planned at 5% · not started"),
        (State.CANARY, "🐤 production-lego-api:production — canary v42 at 5% · soaking"),
        (State.AWAITING_APPROVAL, "awaiting approval"),
        (State.HELD, "⏸ production-lego-api:production — canary v42 at 5% · held"),
        (State.ROLLING_BACK, "🔴 production-lego-api:production — rolling back v42 → v41"),
        (State.PROMOTED, "✅ production-lego-api:production — v42 promoted · alias now 100% v42"),
        (State.ROLLED_BACK, "🔴 production-lego-api:production — rolled back to v41"),
        (State.CANCELLED, "cancelled · alias untouched"),
    ],
)
def test_parent_wording_follows_the_state(state: State, expected: str) -> None:
    d = deployment(state)
    assert expected in text_of(parent_blocks(d, now=NOW))
    assert expected.replace("*", "") in parent_text(d)


def test_parent_of_an_ended_canary_says_who_ended_it_and_when() -> None:
    d = deployment(State.PROMOTED, ended_by="slack:U0SRE (sre)", ended_at=NOW - timedelta(minutes=12))
    assert "Promoted by <@U0SRE> · 14:20 UTC (12 min ago)" in text_of(parent_blocks(d, now=NOW))


def test_parent_flags_an_alias_canary_bot_did_not_set() -> None:
    assert "alias: 95% v41 · 5% v42" in text_of(parent_blocks(deployment(), now=NOW, alias=SPLIT))
    drifted = text_of(parent_blocks(deployment(), now=NOW, alias=STABLE_ONLY))
    assert "⚠️ alias reads 100% v41, which is not what canary-bot set" in drifted


# ---------------------------------------------------------------- soak report
def test_soak_report_marks_a_breaching_metric_red_and_the_others_green() -> None:
    blocks = report(soak(6, p95_ms=250.0))
    assert "Soak report 2/4 · 32 min in" in text_of(blocks)
    assert re.search(r"p95\s+250 ms\s+42 ms\s+≤ 100 ms\s+🔴$", table_row(blocks, "p95"))
    assert table_row(blocks, "errors").endswith("✅")
    assert table_row(blocks, "p99").endswith("✅")
    assert table_row(blocks, "cache hit").endswith("✅")


def test_soak_report_error_rate_is_weighted_by_invocations_over_the_step() -> None:
    # 0 errors in 1,000 then 6 errors in 3,000: 6 / 4,000 = 0.15% (a mean of the two rates would say 0.1%).
    figures = [
        period(T0, canary=version("42", invocations=1000, errors=0)),
        period(T0 + PERIOD, canary=version("42", invocations=3000, errors=6)),
    ]
    row = table_row(report(figures), "errors")
    assert re.search(r"errors\s+0.15%\s+0%\s+≤ 0.1%\s+🔴$", row)


def test_soak_report_shows_no_data_when_the_canary_had_too_little_traffic() -> None:
    figures = [period(T0 + PERIOD * i, canary=version("42", invocations=20, errors=5)) for i in range(3)]
    blocks = report(figures)
    assert table_row(blocks, "errors").endswith("⚠️")
    assert table_row(blocks, "invocations").endswith("⚠️")
    assert "⚠️ 3" in text_of(blocks)


def test_soak_report_counts_breaching_periods_toward_the_rollback() -> None:
    text = text_of(report(soak(6, errors=30)))
    assert "6 periods judged: ✅ 5 · 🔴 1 · ⚠️ 0" in text
    assert "🔴 1 of 2 breaching periods in a row before rollback" in text
    assert "28 min left" in text


def test_soak_report_before_the_first_period_says_there_is_nothing_to_compare() -> None:
    assert "no complete period yet" in text_of(report([]))


# ---------------------------------------------------------------- decisions
def _decision(why: Why, d: Deployment | None = None, **policy_overrides: Any) -> Blocks:
    d = d or (deployment(State.AWAITING_APPROVAL) if why == "approval" else deployment())
    return decision_blocks(
        d,
        why=why,
        reason="soak passed: 12/12 periods within thresholds at 5% for 1h",
        approvers=("S0SREONCALL", "U0LEAD"),
        deadline=NOW + timedelta(minutes=30),
        policy=policy(**policy_overrides),
        now=NOW,
    )


def test_approval_asks_the_approvers_with_confirmed_buttons_that_name_the_deployment() -> None:
    d = deployment(State.AWAITING_APPROVAL)
    blocks = _decision("approval", d)
    text = text_of(blocks)
    assert "✅ Soak passed for v42" in text and "approval needed" in text
    assert "<!subteam^S0SREONCALL>, <@U0LEAD>: promote v42 to 100%?" in text
    assert "(starter <@U0MARIA> cannot approve: two-person rule)" in text
    assert "expires 15:02 UTC (in 30 min) → rolls back" in text
    promote, rollback = button(blocks, ACTION_PROMOTE), button(blocks, ACTION_ROLLBACK)
    assert [b["action_id"] for b in buttons_of(blocks)] == [ACTION_PROMOTE, ACTION_EXTEND, ACTION_ROLLBACK]
    assert promote["style"] == "primary" and promote["confirm"]["title"]["text"] == "Promote v42 to 100%?"
    assert rollback["style"] == "danger" and rollback["confirm"]["style"] == "danger"
    for pressed in buttons_of(blocks):
        ref = parse_button_value(pressed["value"])
        assert (ref.deployment_id, ref.revision) == (d.id, 7)
    assert parse_button_value(button(blocks, ACTION_EXTEND)["value"]).extra == {"by": "30m"}


def test_approval_without_two_person_rule_and_with_hold_timeout() -> None:
    text = text_of(_decision("approval", two_person_rule=False, on_approval_timeout="hold"))
    assert "two-person rule" not in text
    assert "→ holds" in text


def test_inconclusive_soak_offers_extend_hold_rollback_or_promote_anyway_while_soaking() -> None:
    blocks = _decision("inconclusive")
    assert "⚠️ Soak inconclusive for v42" in text_of(blocks)
    assert [b["action_id"] for b in buttons_of(blocks)] == [
        ACTION_EXTEND,
        ACTION_HOLD,
        ACTION_ROLLBACK,
        ACTION_PROMOTE,
    ]
    promote = buttons_of(blocks)[-1]
    assert promote["text"]["text"] == "Promote v42 anyway" and "style" not in promote
    assert "did not prove v42 within its thresholds" in json.dumps(promote["confirm"])


def test_inconclusive_soak_already_held_offers_resume_instead_of_hold() -> None:
    blocks = _decision("inconclusive", deployment(State.HELD))
    assert [b["action_id"] for b in buttons_of(blocks)] == [
        ACTION_EXTEND,
        ACTION_RESUME,
        ACTION_ROLLBACK,
        ACTION_PROMOTE,
    ]


@pytest.mark.parametrize(
    ("state", "question"),
    [
        (State.CANARY, "extend the soak by 30 min, hold, roll back, or promote anyway?"),
        (State.HELD, "extend the soak by 30 min, resume the soak, roll back, or promote anyway?"),
    ],
)
def test_inconclusive_question_asks_exactly_what_its_buttons_offer(state: State, question: str) -> None:
    assert question in text_of(_decision("inconclusive", deployment(state)))


def test_breach_alert_names_the_breach_and_offers_rollback_and_hold() -> None:
    blocks = decision_blocks(
        deployment(),
        why="breach_alert",
        reason="error rate 2.5% > 0.1% for 2 periods",
        approvers=("S0SREONCALL",),
        deadline=None,
        policy=policy(on_breach="alert"),
        now=NOW,
    )
    text = text_of(blocks)
    assert "🔴 Canary v42 breaches its thresholds" in text
    assert "Error rate 2.5% > 0.1% for 2 periods" in text
    assert "<!subteam^S0SREONCALL>: roll back v42?" in text
    assert [b["action_id"] for b in buttons_of(blocks)] == [ACTION_ROLLBACK, ACTION_HOLD]


@pytest.mark.parametrize(
    ("action", "expected"),
    [("rollback", "canary-bot is rolling back to v41"), ("hold", "canary-bot held it at 5%")],
)
def test_approval_timeout_says_what_the_bot_does_and_offers_no_buttons(action: str, expected: str) -> None:
    blocks = _decision("approval_timeout", deployment(State.AWAITING_APPROVAL), on_approval_timeout=action)
    assert expected in text_of(blocks)
    assert buttons_of(blocks) == []


# ---------------------------------------------------------------- prompts, outcome, modal
def test_promote_prompt_shows_now_and_after_with_a_confirmed_primary_button() -> None:
    blocks = action_prompt_blocks(deployment(), action="promote", alias=SPLIT, now=NOW)
    text = text_of(blocks)
    assert "*Now*  95% v41 · 5% v42" in text and "*After*  100% v42" in text
    only = buttons_of(blocks)
    assert len(only) == 1 and only[0]["action_id"] == ACTION_PROMOTE and only[0]["style"] == "primary"
    assert "confirm" in only[0]


def test_rollback_prompt_is_danger_styled_with_a_danger_confirm() -> None:
    blocks = action_prompt_blocks(deployment(), action="rollback", alias=SPLIT, now=NOW)
    assert "*After*  100% v41" in text_of(blocks)
    (only,) = buttons_of(blocks)
    assert only["action_id"] == ACTION_ROLLBACK
    assert only["style"] == "danger" and only["confirm"]["style"] == "danger"


def test_outcome_replaces_buttons_with_text() -> None:
    blocks = outcome_blocks("Promoted by <@U0SRE> at 12:03 UTC")
    assert buttons_of(blocks) == [] and "Promoted by <@U0SRE> at 12:03 UTC" in text_of(blocks)


def test_rollback_reason_modal_carries_the_deployment_and_a_multiline_reason() -> None:
    d = deployment()
    view = rollback_reason_modal(d)
    assert view["type"] == "modal" and view["callback_id"] == CALLBACK_ROLLBACK_REASON
    assert view["submit"]["text"] == "Roll back"
    ref = parse_button_value(view["private_metadata"])
    assert (ref.deployment_id, ref.revision) == (d.id, d.revision)
    (field,) = [b for b in view["blocks"] if b.get("block_id") == BLOCK_ROLLBACK_REASON]
    assert field["element"]["action_id"] == INPUT_ROLLBACK_REASON and field["element"]["multiline"] is True


# ---------------------------------------------------------------- traffic, notes, alarms
def _traffic(action: str, *, d: Deployment | None = None, reason: str | None = None, **event: Any) -> Blocks:
    state = {"promoted": State.PROMOTED, "rolled_back": State.ROLLED_BACK}.get(action, State.CANARY)
    d = d or deployment(state)
    after = {"promoted": PROMOTED_ALIAS, "rolled_back": STABLE_ONLY}.get(action, SPLIT)
    change = TrafficChanged(
        deployment=d,
        at=NOW,
        actor=event.pop("actor", "canary-bot"),
        action=action,
        alias_before=SPLIT,
        alias_after=after,
        reason=reason if reason is not None else "error rate 2.5% > 0.1% for 2 periods",
        **event,
    )
    return traffic_changed_blocks(change, policy=policy(), now=NOW)


def test_automatic_rollback_says_how_fast_and_gives_the_texts_to_copy() -> None:
    blocks = _traffic(
        "rolled_back",
        automatic=True,
        detected_at=NOW - timedelta(seconds=0.4),
    )
    text = text_of(blocks)
    assert (
        "🔴 Rolled back production-lego-api:production to v41 — error rate 2.5% > 0.1% for 2 periods" in text
    )
    assert "Detected 14:31:59.6 · alias reverted 14:32:00.0 (0.4 s) · by canary-bot (automatic)" in text
    assert "Next: root cause analysis of v42" in text
    assert "<!subteam^S0SREONCALL>" in text
    assert "```🔴 ROLLBACK INITIATED\n- Service: LEGO API (production)" in text
    assert "```Investigating: LEGO API Deployment Rollback" in text


def test_manual_rollback_names_the_person() -> None:
    text = text_of(
        _traffic("rolled_back", actor="slack:U0SRE (sre)", actor_mention="<@U0SRE>", reason="bad logs")
    )
    assert "Reverted 14:32:00 UTC · by <@U0SRE> (manual)" in text
    assert "- Reason: Manual decision (bad logs)" in text


def test_promotion_carries_the_post_deployment_summary_with_the_soak_figures() -> None:
    figures = [period(T0 + PERIOD * i, canary=version("42", invocations=1000, errors=0)) for i in range(10)]
    figures[0] = period(T0, canary=version("42", invocations=1000, errors=2))
    text = text_of(_traffic("promoted", actor="slack:U0SRE (sre)", actor_mention="<@U0SRE>", figures=figures))
    assert "✅ Promoted production-lego-api:production to v42 by <@U0SRE> · alias now 100% v42" in text
    assert "- Error Rate: 0.02% (within target < 0.1%)" in text
    assert "keep watching for 24 h" in text


def test_weight_and_next_step_are_one_line_each_without_mentions() -> None:
    for action in ("weight", "next_step"):
        blocks = _traffic(action, actor="slack:U0SRE (sre)", reason="soak passed")
        assert "95% v41 · 5% v42" in text_of(blocks)
        assert "subteam" not in text_of(blocks)


def _noted(what: str, *, reason: str = "looking at the logs", **update: Any) -> Blocks:
    state = {"held": State.HELD, "drift": State.HELD, "cancelled": State.CANCELLED}.get(what, State.CANARY)
    note = StateNoted(
        deployment=deployment(state, **update),
        at=NOW,
        actor="slack:U0SRE (sre)",
        what=what,
        reason=reason,
    )
    return state_noted_blocks(note, now=NOW, approvers=("S0SREONCALL",) if what == "drift" else ())


def test_hold_note_says_traffic_is_unchanged() -> None:
    text = text_of(_noted("held"))
    assert "⏸ Held by <@U0SRE>: looking at the logs" in text
    assert "traffic stays 5% on v42" in text


def test_drift_note_says_the_canary_is_held_and_calls_the_approvers() -> None:
    text = text_of(_noted("drift", reason="it routes 100% v41, expected 95% v41 · 5% v42"))
    assert "🔴 *production-lego-api:production: alias changed outside canary-bot — canary held*" in text
    assert "it routes 100% v41" in text
    assert "<!subteam^S0SREONCALL>" in text


def test_extension_says_when_the_soak_now_ends() -> None:
    d_end = T0 + timedelta(minutes=90)
    assert "now ends 15:30 UTC (in 58 min)" in text_of(_noted("extended", soak_ends_at=d_end))


def _alarms() -> dict[str, AlarmAlert]:
    rolled = deployment(State.ROLLED_BACK)
    base: dict[str, Any] = {
        "at": NOW,
        "alarm_name": "canary-bot/production-lego-api/production/v42/error-rate",
        "state": "ALARM",
        "reason": "Threshold Crossed: 2 datapoints were greater than the threshold (0.001)",
        "function": "production-lego-api",
    }
    return {
        "rolled-back": AlarmAlert(
            **base,
            deployment=rolled,
            rolled_back=True,
            received_at=NOW,
            reverted_at=NOW + timedelta(seconds=1.2),
            approvers=("S0SREONCALL",),
        ),
        "no-canary": AlarmAlert(**base, deployment=None),
        "live-not-rolled-back": AlarmAlert(**base, deployment=deployment()),
        "ok": AlarmAlert(**{**base, "state": "OK"}, deployment=None),
    }


def test_alarm_with_automatic_rollback_reports_notification_to_revert_time() -> None:
    text = text_of(alarm_blocks(_alarms()["rolled-back"], policy=policy(), now=NOW))
    assert "🚨 Canary Deployment Alert" in text
    assert "*Alarm*\ncanary-bot/production-lego-api/production/v42/error-rate" in text
    assert "*State*\nALARM" in text and "*Reason*\nThreshold Crossed" in text
    assert "notification 14:32:00.0 → alias reverted 14:32:01.2 (1.2 s)" in text
    # The rollback message mentioned the approvers; the alarm's details do not mention them again.
    assert "<!subteam^S0SREONCALL>" not in text


def test_alarm_without_a_live_canary_is_an_alert_only() -> None:
    assert "No live canary: alert only" in text_of(alarm_blocks(_alarms()["no-canary"], policy=None, now=NOW))


def test_alarm_back_to_ok_is_informative_and_mentions_nobody() -> None:
    text = text_of(alarm_blocks(_alarms()["ok"], policy=policy(), now=NOW))
    assert "✅ Alarm back to OK" in text
    assert "subteam" not in text and "<@" not in text


# ---------------------------------------------------------------- status, history, home
def test_status_without_canaries_says_so() -> None:
    assert text_of(status_blocks([], now=NOW)) == "No live canaries."


def test_status_lists_each_canary_with_alias_progress_and_verdict() -> None:
    d = deployment()
    last = judge_period(soak(6, errors=30)[-1], POLICY.thresholds, min_invocations=200)
    entries = [
        StatusEntry(deployment=d, alias=SPLIT),
        StatusEntry(deployment=d, alias=None, alias_error="boom"),
    ]
    text = text_of(status_blocks(entries, now=NOW, latest={d.id: last}))
    assert "alias: 95% v41 · 5% v42" in text
    assert "last check 14:30 UTC 🔴 error rate 3% > 0.1%" in text
    assert "⚠️ could not read the alias: boom" in text


def _audit() -> list[AuditRecord]:
    return [
        AuditRecord(deployment_id="d-1", at=T0, actor=STARTER, action="start", phase="done"),
        AuditRecord(deployment_id="d-1", at=T0, actor=STARTER, action="update_routing", phase="intent"),
        AuditRecord(
            deployment_id="d-1",
            at=T0 + timedelta(minutes=41),
            actor="canary-bot",
            action="finish_rollback",
            phase="done",
            reason="error rate 2.5% > 0.1%",
        ),
    ]


def test_history_shows_outcome_and_audit_trail_without_intents() -> None:
    d = deployment(State.ROLLED_BACK, reason="error rate 2.5% > 0.1%")
    text = text_of(history_blocks([HistoryEntry(deployment=d, audit=_audit())], now=NOW))
    assert "🔴 *d-1* v41 → v42 · rolled back" in text
    assert "14:00 UTC start by <@U0MARIA>" in text
    assert "14:41 UTC finish rollback by canary-bot: error rate 2.5% > 0.1%" in text
    assert "update_routing" not in text and "update routing" not in text


def test_home_view_shows_only_the_buttons_the_viewer_may_use() -> None:
    entries = [StatusEntry(deployment=deployment(State.AWAITING_APPROVAL), alias=SPLIT)]
    allowed = {"rollback", "extend"}
    view = home_view(entries, now=NOW, can_act=lambda d, action: action in allowed)
    assert [b["action_id"] for b in buttons_of(view["blocks"])] == [ACTION_EXTEND, ACTION_ROLLBACK]
    everything = home_view(entries, now=NOW, can_act=lambda d, action: True)
    # Resume is not offered to a canary that is not held, whatever the viewer's rights.
    assert [b["action_id"] for b in buttons_of(everything["blocks"])] == [
        ACTION_PROMOTE,
        ACTION_EXTEND,
        ACTION_HOLD,
        ACTION_ROLLBACK,
    ]
    nothing = home_view(entries, now=NOW, can_act=lambda d, action: False)
    assert buttons_of(nothing["blocks"]) == []
    assert not [b for b in nothing["blocks"] if b["type"] == "actions"]


def test_error_shows_what_was_wrong_and_the_usage() -> None:
    text = text_of(error_blocks("unknown verb 'strat'", "/canary start FUNCTION"))
    assert "⚠️ unknown verb 'strat'" in text and "Usage: `/canary start FUNCTION`" in text


# ---------------------------------------------------------------- ids and text
def test_button_value_round_trips_with_extra_fields() -> None:
    d = deployment()
    value = button_value(d, by="30m")
    assert json.loads(value) == {"d": "d-1", "r": 7, "by": "30m"}
    ref = parse_button_value(value)
    assert (ref.deployment_id, ref.revision, ref.extra) == ("d-1", 7, {"by": "30m"})


@pytest.mark.parametrize(
    "junk",
    ["", "not json", "[1, 2]", '{"r": 1}', '{"d": "", "r": 1}', '{"d": "d-1"}', '{"d": "d-1", "r": "7"}'],
)
def test_parse_button_value_refuses_junk(junk: str) -> None:
    with pytest.raises(ValueError):
        parse_button_value(junk)


def test_button_value_refuses_what_would_not_fit_a_button() -> None:
    with pytest.raises(ValueError, match="2000"):
        button_value(deployment(), note="x" * 2000)
    with pytest.raises(ValueError, match="reserved"):
        button_value(deployment(), d="other")


def test_mention_renders_users_and_user_groups() -> None:
    assert (
        mention(("U0ALICE", "W0BOB", "S0SRE", "#deploys"))
        == "<@U0ALICE>, <@W0BOB>, <!subteam^S0SRE>, #deploys"
    )
    assert mention(()) == ""


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(minutes=-12), "14:20 UTC (12 min ago)"),
        (timedelta(minutes=28), "15:00 UTC (in 28 min)"),
        (timedelta(seconds=-20), "14:31 UTC (just now)"),
        (timedelta(hours=-25), "Apr 30 13:32 UTC (25 h ago)"),
        (timedelta(days=-3), "Apr 28 14:32 UTC (3 d ago)"),
    ],
)
def test_times_read_in_utc_with_relative_time(offset: timedelta, expected: str) -> None:
    assert when(NOW + offset, NOW) == expected


# ---------------------------------------------------------------- every builder validates
def _every_message() -> list[tuple[str, Callable[[], Blocks]]]:
    plan = StartPlan(deployment=deployment(State.PLANNED), alias_now=STABLE_ONLY, policy=policy())
    rolled_back = deployment(State.ROLLED_BACK, reason="error rate 2.5% > 0.1% for 2 periods")
    cases: list[tuple[str, Callable[[], Blocks]]] = [
        ("preview", lambda: preview_blocks(plan, now=NOW)),
        (
            "prompt-promote",
            lambda: action_prompt_blocks(deployment(), action="promote", alias=SPLIT, now=NOW),
        ),
        (
            "prompt-rollback",
            lambda: action_prompt_blocks(deployment(), action="rollback", alias=SPLIT, now=NOW),
        ),
        ("outcome", lambda: outcome_blocks("Promoted by <@U0SRE> at 12:03 UTC")),
        ("report", lambda: report(soak(errors=30))),
        ("report-empty", lambda: report([])),
        ("status-empty", lambda: status_blocks([], now=NOW)),
        ("status", lambda: status_blocks([StatusEntry(deployment=deployment(), alias=SPLIT)], now=NOW)),
        ("history-empty", lambda: history_blocks([], now=NOW)),
        ("history", lambda: history_blocks([HistoryEntry(deployment=rolled_back, audit=_audit())], now=NOW)),
        ("help", lambda: help_blocks("*/canary start* FUNCTION\n\n*/canary status*")),
        ("error", lambda: error_blocks("unknown verb 'strat'", "/canary start FUNCTION [VERSION]")),
        ("error-no-usage", lambda: error_blocks("no such function", None)),
        ("refusal", lambda: refusal_blocks("<@U0X> is not an approver for this function")),
    ]
    for state in State:
        cases.append((f"parent-{state.value}", partial(_parent, state)))
    for why in get_args(Why):
        cases.append((f"decision-{why}", partial(_decision, why)))
    for action in ("promoted", "rolled_back", "weight", "next_step"):
        cases.append((f"traffic-{action}", partial(_traffic, action)))
    for what in ("held", "resumed", "extended", "cancelled", "drift"):
        cases.append((f"noted-{what}", partial(_noted, what)))
    for name, alert in _alarms().items():
        cases.append((f"alarm-{name}", partial(alarm_blocks, alert, policy=policy(), now=NOW)))
    return cases


def _parent(state: State) -> Blocks:
    return parent_blocks(deployment(state), now=NOW)


@pytest.mark.parametrize(("name", "build"), _every_message(), ids=[n for n, _ in _every_message()])
def test_every_message_validates_with_slack_sdk_models(name: str, build: Callable[[], Blocks]) -> None:
    assert_valid_message(build())


def test_rollback_prompt_with_a_reason_carries_it_in_the_button() -> None:
    blocks = action_prompt_blocks(
        deployment(), action="rollback", alias=SPLIT, now=NOW, reason="cache hit 61%"
    )
    assert "*Reason*  cache hit 61%" in text_of(blocks)
    assert parse_button_value(button(blocks, ACTION_ROLLBACK)["value"]).extra == {"reason": "cache hit 61%"}
    without = action_prompt_blocks(deployment(), action="rollback", alias=SPLIT, now=NOW)
    assert parse_button_value(button(without, ACTION_ROLLBACK)["value"]).extra == {}


# ---------------------------------------------------------------- the watch after a promotion
WATCH_ENDS = T0 + timedelta(hours=24)


def promoted(**update: Any) -> Deployment:
    return deployment(
        State.PROMOTED, ended_at=T0, ended_by="slack:U0SRE (sre)", watch_until=WATCH_ENDS, **update
    )


def watch_periods(n: int, **canary: Any) -> list[PeriodFigures]:
    """n periods of v42 alone from T0; `canary` overrides the figures of the last two."""
    idle = version("41", invocations=0, p95_ms=None, p99_ms=None, cache_hits=0, cache_misses=0)
    figures = [
        period(T0 + PERIOD * i, canary=version("42", invocations=20_000, errors=4), stable=idle)
        for i in range(n)
    ]
    for i in range(max(0, n - 2), n) if canary else ():
        figures[i] = period(T0 + PERIOD * i, canary=version("42", **canary), stable=idle)
    return figures


def check_in(figures: list[PeriodFigures]) -> Blocks:
    event = WatchCheckIn(
        deployment=promoted(), at=NOW, actor="canary-bot", number=1, total=3, figures=figures
    )
    return watch_check_in_blocks(event, policy=POLICY, now=NOW)


def test_parent_of_a_watched_promotion_says_until_when_then_that_the_watch_is_complete() -> None:
    watching = text_of(parent_blocks(promoted(), now=NOW))
    assert (
        "Promoted by <@U0SRE> · 14:00 UTC (32 min ago) · 👀 watching 24 h, ends May 02 14:00 UTC" in watching
    )
    assert "thread for reports ↓" in watching
    done = text_of(parent_blocks(promoted(), now=WATCH_ENDS, alias=PROMOTED_ALIAS))
    assert "✅ 24 h watch complete" in done and "alias: 100% v42" in done
    assert "thread for reports" not in done
    assert "watch" not in text_of(parent_blocks(deployment(State.PROMOTED), now=NOW))  # no watch, no line


def test_promotion_says_canary_bot_keeps_watching_and_when_the_post_mortem_comes() -> None:
    event = TrafficChanged(
        deployment=promoted(), at=T0, actor="slack:U0SRE (sre)", action="promoted", alias_after=PROMOTED_ALIAS
    )
    text = text_of(traffic_changed_blocks(event, policy=POLICY, now=T0))
    assert "canary-bot will keep watching for 24 h: check-ins every 6 h, post-mortem May 02 14:00 UTC" in text


def test_watch_check_in_shows_the_promoted_versions_figures_against_the_thresholds() -> None:
    blocks = check_in(watch_periods(72, invocations=20_000, errors=4, p95_ms=180.0))
    text = text_of(blocks)
    assert "👀 Watch check-in 1/3 · v42 at 100% of production for 32 min" in text
    assert "72 periods judged: ✅ 70 · 🔴 2 · ⚠️ 0" in text
    assert "🔴 1 breach during the watch, the latest: p95 180 ms > 100 ms" in text
    assert table_row(blocks, "errors").split() == ["errors", "0.02%", "≤", "0.1%", "✅"]
    assert table_row(blocks, "p95").split() == ["p95", "180", "ms", "≤", "100", "ms", "🔴"]
    assert table_row(blocks, "invocations").split() == ["invocations", "1,440,000"]
    assert "post-mortem May 02 14:00 UTC (in 23 h 28 min)" in text


def test_watch_check_in_before_any_period_says_so() -> None:
    assert "no complete period stored yet" in text_of(check_in([]))


def test_watch_alert_calls_the_approvers_says_how_to_go_back_and_offers_a_danger_revert() -> None:
    event = WatchAlert(
        deployment=promoted(),
        at=NOW,
        actor="canary-bot",
        reason="p95 180 ms > 100 ms for 2 periods",
        approvers=("S0SREONCALL",),
        alias=PROMOTED_ALIAS,
    )
    blocks = watch_alert_blocks(event, policy=POLICY, now=NOW)
    text = text_of(blocks)
    assert "🔴 v42 breaches its thresholds during the watch after promotion — nothing was changed" in text
    assert "v42 serves 100% of production-lego-api:production since 14:00 UTC (32 min ago)" in text
    assert "<!subteam^S0SREONCALL>: go back to v41?" in text
    assert "`/canary start production-lego-api 41`" in text
    assert "`/canary revert production-lego-api --reason TEXT`" in text
    [revert] = [
        e
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "canary_revert"
    ]
    assert revert["style"] == "danger" and revert["confirm"]["style"] == "danger"
    value = json.loads(revert["value"])
    assert (value["d"], value["r"]) == (event.deployment.id, event.deployment.revision)
    assert value["reason"].startswith("watch breach: p95 180 ms")


def test_watch_alert_says_what_the_alias_routes_when_someone_already_changed_it() -> None:
    event = WatchAlert(
        deployment=promoted(),
        at=NOW,
        actor="canary-bot",
        reason="error rate 2% > 0.1% for 2 periods",
        alias=STABLE_ONLY,
    )
    assert "production-lego-api:production now routes 100% v41" in text_of(
        watch_alert_blocks(event, policy=POLICY, now=NOW)
    )


@pytest.mark.parametrize(
    ("alias", "line"),
    [
        (PROMOTED_ALIAS, "✅ Full migration verified: production routes 100% v42, no additional weights"),
        (
            STABLE_ONLY,
            "⚠️ production now routes 100% v41, not 100% v42: the alias was changed after the promotion",
        ),
    ],
)
def test_post_mortem_says_whether_the_migration_is_verified_and_carries_the_document(
    alias: AliasState, line: str
) -> None:
    event = PostMortem(
        deployment=promoted(),
        at=WATCH_ENDS,
        actor="canary-bot",
        alias=alias,
        soak_figures=soak(12),
        watch_figures=watch_periods(288),
    )
    blocks = post_mortem_blocks(event, policy=POLICY, now=WATCH_ENDS)
    text = text_of(blocks)
    assert "📝 Post-mortem · v42 after 24 h at 100% of production-lego-api:production" in text
    assert line in text
    assert "errors 0.02% · cache hit 94% · p95 42 ms (worst period) · 288 periods · ✅ no breach" in text
    assert "*Post-mortem (copy into the review doc)*\n```# LEGO API v42 - Production Deployment" in text


def _watch_messages() -> list[tuple[str, Callable[[], Blocks]]]:
    long_reason = "p95 180 ms > 100 ms for 2 periods " * 200
    return [
        ("check-in", lambda: check_in(watch_periods(72))),
        ("check-in-empty", lambda: check_in([])),
        (
            "alert",
            lambda: watch_alert_blocks(
                WatchAlert(deployment=promoted(), at=NOW, actor="canary-bot", reason=long_reason),
                policy=POLICY,
                now=NOW,
            ),
        ),
        (
            "post-mortem-unread-alias",
            lambda: post_mortem_blocks(
                PostMortem(
                    deployment=promoted(), at=WATCH_ENDS, actor="canary-bot", alias=None, alias_error="x"
                ),
                policy=POLICY,
                now=WATCH_ENDS,
            ),
        ),
    ]


@pytest.mark.parametrize(("name", "build"), _watch_messages(), ids=[n for n, _ in _watch_messages()])
def test_every_watch_message_validates_with_slack_sdk_models(name: str, build: Callable[[], Blocks]) -> None:
    assert_valid_message(build())
