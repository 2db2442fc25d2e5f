"""The README's examples work as written: every fenced YAML, JSON and shell block is checked.

- ```yaml  → a policy: load_policy (the same validation as CANARY_POLICY_FILE);
- ```json  → parses;
- ```sh    → each command line: `canary-bot VERB …` must be a verb whose `--help` exits 0; `make TARGET` a target
  of the Makefile. Commands that need an AWS account are on the allow-list below, with the reason; any other
  command fails the test, so a new example is either checkable or consciously listed.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_policy

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)

# Commands the tests cannot run, and why. Their syntax is still the README's responsibility.
NOT_RUNNABLE = {
    "aws": "needs an AWS account (the README's one-time SNS/SQS wiring, the CloudFormation stack)",
    "docker": "needs a Docker daemon and the built image (Running in production)",
}


def _blocks(lang: str) -> list[str]:
    return [m.group("body") for m in FENCE.finditer(README.read_text()) if m.group("lang") == lang]


def _command_lines(block: str) -> list[list[str]]:
    """Shell lines with continuations joined and comments dropped, split into words."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.append(words)
    return lines


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w-]*):", makefile, re.MULTILINE)}


def test_the_readme_has_examples_of_each_kind() -> None:
    assert _blocks("yaml") and _blocks("json") and _blocks("sh")


@pytest.mark.parametrize("block", _blocks("yaml"))
def test_every_yaml_example_loads_as_a_policy(block: str, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(block)
    policy = load_policy(path)  # raises PolicyError with the key path and the reason
    assert policy.function_names()


@pytest.mark.parametrize("block", _blocks("json"))
def test_every_json_example_parses(block: str) -> None:
    json.loads(block)


@pytest.mark.parametrize("words", [w for b in _blocks("sh") for w in _command_lines(b)], ids=" ".join)
def test_every_shell_example_is_a_real_command(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    program = Path(words[0]).name
    if program == "canary-bot":
        verb = [w for w in words[1:] if not w.startswith("--")][:1]
        assert main([*verb, "--help"]) == 0, capsys.readouterr().err
    elif program == "make":
        targets = {w for w in words[1:] if "=" not in w}  # VAR=value words set make variables
        missing = targets - _make_targets()
        assert not missing, f"make targets not in the Makefile: {missing}"
    else:
        assert program in NOT_RUNNABLE, f"{' '.join(words)}: not checkable and not on the allow-list"
