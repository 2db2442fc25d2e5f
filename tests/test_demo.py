"""`make demo` tells the whole story on its own: exit 0 only when both scenarios end as they should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "canary-bot"


def _demo(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "demo", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_demo_promotes_the_healthy_canary_and_rolls_back_the_bad_one() -> None:
    run = _demo()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    aliases = re.findall(r"FunctionVersion=(\d+)\s+RoutingConfig.AdditionalVersionWeights=(\S+)", out)
    # healthy: before and after; bad canary: after the rollback
    assert aliases == [("1", "{}"), ("2", "{}"), ("1", "{}")]
    assert "Soak report 4/4" in out
    assert "two-person rule" in out and "Promoted by @joe" in out
    assert (
        "Watch check-in 3/3" in out
        and "Full migration verified" in out
        and "**Duration**: 1 hour canary" in out
    )
    assert "ROLLBACK INITIATED" in out and "Investigating" in out
    assert "Traceback" not in out + run.stderr


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
