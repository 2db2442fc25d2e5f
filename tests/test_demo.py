"""`make demo` tells the whole story on its own: exit 0 only when all three scenarios end as they should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "canary-bot"


def _demo(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "demo", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def demo_run() -> subprocess.CompletedProcess[str]:
    return _demo()


def test_the_demo_promotes_the_healthy_canary_and_rolls_back_the_bad_one(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    run = demo_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    aliases = re.findall(r"FunctionVersion=(\d+)\s+RoutingConfig.AdditionalVersionWeights=(\S+)", out)
    # healthy: before and after; bad canary: after the rollback; regression: promoted, then reverted
    assert aliases == [("1", "{}"), ("2", "{}"), ("1", "{}"), ("2", "{}"), ("1", "{}")]
    assert "Soak report 4/4" in out
    assert "two-person rule" in out and "Promoted by @joe" in out
    assert (
        "Watch check-in 3/3" in out
        and "Full migration verified" in out
        and "**Duration**: 1 hour canary" in out
    )
    assert "ROLLBACK INITIATED" in out and "Investigating" in out
    assert "Traceback" not in out + run.stderr


def test_the_demo_reads_as_a_person_would_read_it(demo_run: subprocess.CompletedProcess[str]) -> None:
    """No internal words, no doubled words, one figure per event, one broadcast per rollback."""
    out = demo_run.stdout
    internal = re.findall(r"\b(?:rolled_back|finish_rollback|begin_rollback|set_weight|slack:U\w+)", out)
    assert internal == []
    doubled = re.findall(r"\b([A-Za-z]{3,})\b[:\s]+\1\b", out, flags=re.I)
    assert doubled == [], doubled
    assert "Promoted by @joe at 15:01 UTC: production-lego-api:production now 100% v2" in out
    healthy, rest = out.split("Scenario 2", 1)
    bad, regression = rest.split("Scenario 3", 1)

    # The post-deployment summary gives the last soak report's figures: one set of figures.
    last_report = healthy[healthy.rindex("Soak report 4/4") :]
    report_invocations = re.search(r"invocations\s+([\d,]+)\s+([\d,]+)", last_report)
    report_p95 = re.search(r"p95\s+(\d+) ms", last_report)
    report_periods = re.search(r"(\d+) periods judged", last_report)
    assert report_invocations and report_p95 and report_periods
    summary = healthy[healthy.index("Post-deployment summary") :]
    assert (
        f"Invocations: {report_invocations.group(1)} on v2 ({report_invocations.group(2)} on v1) "
        f"over {report_periods.group(1)} periods"
    ) in summary
    assert f"P95 Latency: {report_p95.group(1)}ms" in summary
    assert f"During the canary: error rate 0%, cache hit rate 93.7%, p95 {report_p95.group(1)}ms" in healthy

    # The automatic rollback: one measured time in every message, one broadcast, the approvers mentioned once.
    after = bad[bad.index("Rolled back production-lego-api") :]
    timings = set(re.findall(r"\((\d+(?:\.\d+)? m?s)\)", after))
    assert len(timings) == 1, timings
    assert bad.count("also sent to the channel") == 1
    assert after.count("@sre-oncall") == 1

    # Revert from the watch's alert: one alert, one Revert, the seed's messages, v1 back.
    assert regression.count("breaches its thresholds during the watch") == 1
    assert "presses [" in regression and "] Revert to v1" in regression
    reverted = regression[
        regression.index("Reverted the promotion of production-lego-api:production to v1") :
    ]
    assert "ROLLBACK INITIATED" in reverted and "Investigating: LEGO API Deployment Rollback" in reverted


def test_the_demo_shows_the_seeds_checklist_before_every_start_and_a_red_check_refusing_one(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    out = demo_run.stdout
    healthy, _ = out.split("Scenario 2", 1)
    forgot, rest = healthy.split("types: /canary start production-lego-api --publish --set REDIS_URL=", 1)
    refused = forgot[forgot.index("types: /canary start production-lego-api --publish") :]
    assert "preflight of production-lego-api:production $LATEST: 7 ✅ · 2 🔴" in refused
    assert "🔴 *Cache URL*: REDIS_URL is not set on $LATEST" in refused
    assert "Start refused: a 🔴 check blocks it. Nothing was changed." in refused
    assert "--override-preflight REASON" in refused and "Start canary" not in refused

    preview = rest[: rest.index("presses [1] Start canary")]
    assert "preflight of production-lego-api:production $LATEST: 9 ✅" in preview
    for line in (
        "✅ *Cache URL*: REDIS_URL → production-cache.cache.amazonaws.com:6379 after --publish's changes",
        "✅ *Runs in a VPC*: in vpc-",
        "✅ *Security groups reach the cache*: production-cache",
        "✅ *Secret in Secrets Manager*: secret production/lego-api/redis exists",
        "✅ *Billing alarm*: billing-estimated-charges alarms at $50",
        "✅ *No alarm firing*: no alarm of production-lego-api is in ALARM",
        "✅ *Stable baseline healthy*: stable over the last hour: error rate",
    ):
        assert line in preview, line
    assert "allows sg-0lambda0lego0api on port 6379" in preview.replace("\n  ", " ")
    # The other stories' starts (v2 already published) are checked too.
    assert out.count("preflight of production-lego-api:production v2: 9 ✅") == 1  # scenario 3's is quiet
    assert "the preflight refused a start without REDIS_URL" in healthy


def test_a_wrong_demo_option_is_a_usage_error() -> None:
    run = _demo("--fast")
    assert run.returncode == 2
    assert "usage: canary-bot demo" in run.stderr


def test_the_interactive_demo_takes_commands_and_buttons_by_number() -> None:
    script = (
        "/canary start production-lego-api 2\n1\nas sam\n/canary promote production-lego-api\nalias\nquit\n"
    )
    run = _demo("--interactive", stdin=script)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "» @maria presses [1] Start canary" in run.stdout
    assert re.search(r"FunctionVersion=1\s+RoutingConfig.AdditionalVersionWeights=\{'2': 0.05\}", run.stdout)
    assert "not an approver" in run.stdout or "approver" in run.stdout
