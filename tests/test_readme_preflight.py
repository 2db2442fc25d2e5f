"""The README's preflight examples work as written: the Python block that adds a check is run, the check is
listed in a policy and judges a version, and every check the README's table names is a registered check."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import load_policy
from bot.preflight import CHECKS, SEED_CHECKS, PreflightRequest, evaluate, facts_needed
from canary_demo.fakes.preflight import FakePreflight
from tests.test_readme_examples import README, _blocks


def test_the_readmes_python_example_registers_a_check_a_policy_can_list(tmp_path: Path) -> None:
    (block,) = _blocks("python")
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # the README's own example, run as written
    try:
        assert "no_debug_logging" in CHECKS
        policy = tmp_path / "policy.yaml"
        policy.write_text("functions:\n  production-lego-api:\n    preflight: [no_debug_logging]\n")
        listed = load_policy(policy).for_function("production-lego-api")
        assert listed is not None and listed.preflight == ("no_debug_logging",)
        fake = FakePreflight()
        fake.add_function("production-lego-api", env={"LOG_LEVEL": "DEBUG"})
        request = PreflightRequest(
            function="production-lego-api", alias="production", version="2", checks=listed.preflight
        )
        report = evaluate(fake.gather(request, facts_needed(request.checks)))
        assert [(r.name, r.status) for r in report.results] == [
            ("function", "pass"),
            ("no_debug_logging", "fail"),
        ]
        assert report.results[1].evidence == "LOG_LEVEL=DEBUG on v2"
    finally:
        CHECKS.pop("no_debug_logging", None)


def test_the_readmes_table_names_exactly_the_built_in_checks() -> None:
    section = README.read_text().split("## Preflight (the pre-deployment checklist)")[1].split("\n## ")[0]
    named = re.findall(r"^\| `(\w+)`", section, re.MULTILINE)
    assert named == ["function", *SEED_CHECKS]
    assert set(named) == set(CHECKS)
