"""The CLI as a new user meets it: every bad input gets one specific message and the usage line, the right
exit code, and leaves the alias exactly as it was (read back from Lambda)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from bot.actors import cli_actor
from bot.aws.clients import lambda_client
from bot.aws.traffic import LambdaTraffic
from bot.cli import Console, main, run
from bot.clock import ManualClock
from bot.config import load_policy
from bot.service import CanaryService
from bot.store import open_store
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api


class Moto:
    def __init__(self) -> None:
        self.client = lambda_client(region="us-east-1")
        seed_lego_api(self.client)
        self.service = CanaryService(
            traffic=LambdaTraffic(self.client),
            store=open_store("sqlite://:memory:"),
            policy=load_policy(None),
            clock=ManualClock(),
        )
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.answers: list[str] = []

    def run(self, line: str, user: str = "maria") -> int:
        self.out.seek(0)
        self.out.truncate()
        self.err.seek(0)
        self.err.truncate()
        console = Console(
            out=self.out, err=self.err, ask=lambda _q: self.answers.pop(0) if self.answers else ""
        )
        return run(line.split(), self.service, cli_actor(user), console)

    def alias(self) -> tuple[str, dict[str, float]]:
        got = self.client.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
        weights = got.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
        return got["FunctionVersion"], dict(weights)


@pytest.fixture
def aws() -> Iterator[Moto]:
    with mock_aws():
        yield Moto()


def test_start_with_yes_routes_five_percent_and_prints_the_alias(aws: Moto) -> None:
    assert aws.run(f"start {LEGO_API} 2 --yes") == 0
    assert aws.alias() == ("1", {"2": 0.05})
    assert "95% v1 · 5% v2" in aws.out.getvalue()


def test_start_without_yes_shows_the_plan_and_asks(aws: Moto) -> None:
    aws.answers = ["n"]
    assert aws.run(f"start {LEGO_API} 2") == 3
    out = aws.out.getvalue()
    assert "Now       100% v1" in out and "After     95% v1 · 5% v2" in out
    assert "error rate > 0.1%" in out and "p95 > 100 ms" in out
    assert aws.alias() == ("1", {})
    aws.answers = ["y"]
    assert aws.run(f"start {LEGO_API} 2") == 0
    assert aws.alias() == ("1", {"2": 0.05})


def test_promote_and_rollback_ask_before_acting(aws: Moto) -> None:
    aws.run(f"start {LEGO_API} 2 --yes")
    aws.answers = ["no"]
    assert aws.run(f"promote {LEGO_API}") == 3
    assert "→ 100% v2" in aws.out.getvalue()
    assert aws.alias() == ("1", {"2": 0.05})
    aws.answers = ["y"]
    assert aws.run(f"rollback {LEGO_API} --reason errors") == 0
    assert aws.alias() == ("1", {})


def test_json_output_is_machine_readable(aws: Moto) -> None:
    assert aws.run(f"start {LEGO_API} 2 --yes --json") == 0
    payload = json.loads(aws.out.getvalue())
    assert payload["deployment"]["state"] == "canary"
    assert payload["alias"]["weights"] == {"2": 0.05}
    assert aws.run(f"status {LEGO_API} --json") == 0
    status = json.loads(aws.out.getvalue())
    assert status[0]["deployment"]["canary_version"] == "2"


def test_json_errors_carry_the_message_and_usage(aws: Moto) -> None:
    assert aws.run(f"start {LEGO_API} 2 --weight 0% --json") == 2
    payload = json.loads(aws.out.getvalue())
    assert payload["ok"] is False and "between 0% and 100%" in payload["message"]
    assert payload["usage"].startswith("usage: start FUNCTION")


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        ("start no-such-function 2 --yes", 2, "no-such-function is not listed in the canary policy"),
        (f"start {LEGO_API} 2 --alias staging --yes", 2, "alias staging not found"),
        (f"start {LEGO_API} 7 --yes", 2, "version 7"),
        (f"start {LEGO_API} 1 --yes", 2, "already the stable version"),
        (f"start {LEGO_API} 2 --weight 0% --yes", 2, "between 0% and 100%"),
        (f"start {LEGO_API} 2 --weight 100% --yes", 2, "between 0% and 100%"),
        (f"start {LEGO_API} 2 --weight 150% --yes", 2, "between 0% and 100%"),
        (f"start {LEGO_API} 2 --weight abc --yes", 2, "'abc' is not a percentage"),
        (f"start {LEGO_API} 2 --weight 5%% --yes", 2, "'5%%' is not a percentage"),
        (f"start {LEGO_API} 2 --soak forever --yes", 2, "not a duration"),
        (f"start {LEGO_API} --yes", 2, "VERSION"),
        (f"promote {LEGO_API} --yes", 3, "no live canary"),
        (f"rollback {LEGO_API} --reason x --yes", 3, "no live canary"),
        (f"rollback {LEGO_API} --yes", 2, "--reason is required"),
        ("frobnicate", 2, "unknown verb 'frobnicate'"),
        ("start", 2, "missing function"),
    ],
)
def test_bad_input_gets_a_specific_message_the_usage_line_and_changes_nothing(
    aws: Moto, line: str, code: int, message: str
) -> None:
    assert aws.run(line) == code
    err = aws.err.getvalue()
    assert message in err
    if code == 2:
        assert "usage:" in err
    assert "Traceback" not in err
    assert aws.alias() == ("1", {})


def test_a_second_start_while_one_is_live_is_refused_with_exit_3(aws: Moto) -> None:
    aws.run(f"start {LEGO_API} 2 --yes")
    assert aws.run(f"start {LEGO_API} 2 --weight 10% --yes", user="joe") == 3
    assert "already has a live canary" in aws.err.getvalue()
    assert aws.alias() == ("1", {"2": 0.05})


def test_history_lists_every_step_with_the_actor(aws: Moto) -> None:
    aws.run(f"start {LEGO_API} 2 --yes")
    aws.run(f"promote {LEGO_API} --yes", user="joe")
    assert aws.run(f"history {LEGO_API}") == 0
    out = aws.out.getvalue()
    assert "start" in out and "by cli:maria" in out
    assert "promote" in out and "by cli:joe" in out


def test_a_policy_file_with_a_misspelt_key_names_file_key_and_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "defaults:\n  soak: 1h\nfunctions:\n  production-lego-api:\n    alias: production\n    aproovers: [U1]\n"
    )
    monkeypatch.setenv("CANARY_POLICY_FILE", str(policy))
    monkeypatch.setenv("CANARY_STORE_URL", f"sqlite:///{tmp_path}/s.db")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert str(policy) in err
    assert "functions.production-lego-api.aproovers" in err
    assert "unknown key" in err
    assert "Traceback" not in err


def test_a_policy_value_of_the_wrong_kind_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults:\n  thresholds:\n    p95_ms: fast\nfunctions: {}\n")
    monkeypatch.setenv("CANARY_POLICY_FILE", str(policy))
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "defaults.thresholds.p95_ms" in err


def test_a_bad_store_url_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CANARY_STORE_URL", "postgres://nope")
    assert main(["status"]) == 2
    assert "CANARY_STORE_URL" in capsys.readouterr().err


def test_json_with_a_changing_verb_needs_yes(aws: Moto) -> None:
    assert aws.run(f"start {LEGO_API} 2 --json") == 2
    assert "needs --yes" in json.loads(aws.out.getvalue())["message"]
    assert aws.alias() == ("1", {})
