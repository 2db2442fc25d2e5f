"""deploy/template.yaml: valid CloudFormation (cfn-lint), a table the DynamoDB store can use, roles that allow
what the code calls and no more than the brief of each role, and the Lambda zip's contents."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.store.dynamodb import TTL_ATTRIBUTE, table_definition

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) as {"Tag": value}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    return loaded


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_finds_nothing_wrong_with_the_template() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"  # the dev dependency's console script
    done = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_table_is_the_one_init_store_creates(template: dict[str, Any]) -> None:
    [table] = resources(template, "AWS::DynamoDB::Table").values()
    wanted = table_definition("canary-bot")

    assert table["BillingMode"] == wanted["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == wanted["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(wanted["AttributeDefinitions"], key=str)
    assert sorted(table["GlobalSecondaryIndexes"], key=str) == sorted(
        wanted["GlobalSecondaryIndexes"], key=str
    )
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def _actions(template: dict[str, Any], role: str) -> set[str]:
    props = template["Resources"][role]["Properties"]
    found: set[str] = set()
    for policy in props["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            action = statement["Action"]
            found.update([action] if isinstance(action, str) else action)
    return found


def _store_calls() -> set[str]:
    source = (ROOT / "bot" / "store" / "dynamodb.py").read_text()
    return set(re.findall(r"(?:self\._db|db)\.([a-z_]+)\(", source))


# IAM actions each client method needs (a transaction is authorised item by item).
_IAM = {
    "describe_table": {"dynamodb:DescribeTable"},
    "describe_time_to_live": {"dynamodb:DescribeTimeToLive"},
    "get_item": {"dynamodb:GetItem"},
    "batch_get_item": {"dynamodb:BatchGetItem"},
    "query": {"dynamodb:Query"},
    "batch_write_item": {"dynamodb:BatchWriteItem"},
    "put_item": {"dynamodb:PutItem"},
    "update_item": {"dynamodb:UpdateItem"},
    "delete_item": {"dynamodb:DeleteItem"},
    "transact_write_items": {
        "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"
    },
    "create_table": {"dynamodb:CreateTable"},
    "update_time_to_live": {"dynamodb:UpdateTimeToLive"},
}  # fmt: skip


def test_both_roles_may_make_every_call_the_store_makes_but_neither_creates_tables(
    template: dict[str, Any],
) -> None:
    calls = _store_calls()
    assert {"transact_write_items", "get_item", "query", "batch_get_item"} <= calls
    needed = set().union(*(_IAM[c] for c in calls if c not in ("create_table", "update_time_to_live")))
    needed -= {"dynamodb:DescribeTimeToLive"}  # init-store only
    for role in ("BotRole", "ResponderRole"):
        actions = _actions(template, role)
        assert needed <= actions, (role, needed - actions)
        assert not {"dynamodb:CreateTable", "dynamodb:UpdateTimeToLive", "dynamodb:Scan"} & actions


def test_the_responder_may_only_revert_aliases_and_delete_canary_alarms(template: dict[str, Any]) -> None:
    outside = {a for a in _actions(template, "ResponderRole") if not a.startswith("dynamodb:")}
    assert outside == {"lambda:GetAlias", "lambda:UpdateAlias", "cloudwatch:DeleteAlarms"}


def test_the_responder_is_subscribed_to_the_alarm_topic_and_runs_the_handler(
    template: dict[str, Any],
) -> None:
    [function] = resources(template, "AWS::Lambda::Function").values()
    assert function["Handler"] == "bot.lambda_responder.handler"
    assert function["Environment"]["Variables"]["CANARY_STORE_URL"] == {"Sub": "dynamodb://${StoreTable}"}
    protocols = {s["Protocol"]: s for s in resources(template, "AWS::SNS::Subscription").values()}
    assert protocols["lambda"]["TopicArn"] == protocols["sqs"]["TopicArn"] == {"Ref": "AlarmTopic"}


def test_the_lambda_zip_holds_the_bot_and_the_policy_without_the_demo(tmp_path: Path) -> None:
    out = tmp_path / "responder.zip"
    policy = tmp_path / "mine.yaml"
    policy.write_text("functions: {}\n")
    build = ROOT / "deploy" / "build_lambda_zip.py"
    subprocess.run(
        [sys.executable, str(build), "--no-deps", "--out", str(out), "--policy", str(policy)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    names = zipfile.ZipFile(out).namelist()
    assert "bot/lambda_responder.py" in names and "bot/store/dynamodb.py" in names
    assert zipfile.ZipFile(out).read("policy.yaml") == b"functions: {}\n"
    assert not [n for n in names if n.startswith(("bot/demo/", "slack_bolt/", "matplotlib/")) or ".pyc" in n]
