"""One rule for percentages, in the policy file, on the CLI and in Slack: written with %, never guessed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import PolicyError, load_policy
from bot.model import State, Thresholds
from bot.units import UnitError, parse_percent
from bot.verbs import UsageError, parse_text


def _policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("text", "fraction"), [("5%", 0.05), ("0.1%", 0.001), ("80%", 0.8), (" 2.5 % ", 0.025)]
)
def test_a_percentage_means_the_same_in_the_policy_the_cli_and_slack(
    tmp_path: Path, text: str, fraction: float
) -> None:
    policy = load_policy(
        _policy(tmp_path, f"defaults: {{steps: ['{text.strip()}']}}\nfunctions: {{f: {{}}}}\n")
    )
    fp = policy.for_function("f")
    assert fp is not None and fp.steps == (pytest.approx(fraction),)
    assert parse_text(f"weight f {text.replace(' ', '')}").weight == pytest.approx(fraction)  # type: ignore[union-attr]
    assert parse_text(f"start f 2 --weight {text.replace(' ', '')}").weight == pytest.approx(fraction)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    [
        "defaults: {steps: [0.05]}\nfunctions: {f: {}}\n",
        "defaults: {thresholds: {error_rate: 0.001}}\nfunctions: {f: {}}\n",
        "defaults: {}\nfunctions: {f: {thresholds: {cache_hit_rate: 0.8}}}\n",
        "defaults: {thresholds: {error_rate: '0.1'}}\nfunctions: {f: {}}\n",
    ],
)
def test_a_bare_number_in_the_policy_is_refused_naming_the_field_and_the_fix(
    tmp_path: Path, body: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(_policy(tmp_path, body))
    message = str(caught.value)
    assert "has no % sign" in message and "write" in message
    assert any(
        field in message for field in ("steps.0", "thresholds.error_rate", "thresholds.cache_hit_rate")
    )


@pytest.mark.parametrize(
    "text", ["weight f 0.05", "weight f 5", "start f 2 --weight 0.05", "start f 2 --weight 25"]
)
def test_a_bare_number_on_the_cli_or_in_slack_is_refused_with_the_fix(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_text(text)
    assert "has no % sign" in caught.value.message and "%" in caught.value.message


def test_the_fix_for_a_fraction_offers_both_readings() -> None:
    with pytest.raises(UnitError) as caught:
        parse_percent("0.05")
    assert "write 5% (the fraction 0.05) or 0.05%" in str(caught.value)


def test_percent_thresholds_in_the_policy_file_load() -> None:
    thresholds = Thresholds.model_validate({"error_rate": "0.1%", "cache_hit_rate": "80%"})
    assert (thresholds.error_rate, thresholds.cache_hit_rate) == (pytest.approx(0.001), pytest.approx(0.8))


def test_code_may_still_pass_fractions() -> None:
    assert Thresholds(error_rate=0.02).error_rate == 0.02


def test_weights_carry_the_percent_rule_from_the_verb_to_the_stored_deployment_and_read_back_exactly() -> None:
    from bot.intents import Routing
    from bot.model import Deployment
    from tests.support.canary_core import in_state

    d = in_state(State.CANARY)
    assert Deployment.model_validate({**dict(d), "weight": "12.3456%"}).weight == pytest.approx(0.123456)
    stored = d.model_copy(update={"weight": 0.123456789}).model_dump_json()
    assert Deployment.model_validate_json(stored).weight == 0.123456789  # a float in JSON: no rounding
    for bad in (7.5, -0.1, float("nan"), "5"):
        with pytest.raises(ValueError):
            Deployment.model_validate({**dict(d), "weight": bad})
    with pytest.raises(ValueError):
        Routing(version="1", weights={"2": 1.5})
