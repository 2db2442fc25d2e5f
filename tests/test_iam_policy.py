"""The README's IAM policy grants exactly the AWS operations canary-bot's code makes.

tests/conftest.py hooks every botocore client for the whole session (tests/support/aws_operations.py) and runs
this test last. An operation the bot made that the policy lacks fails always (the bot would fail, often
silently, under that policy); a granted action no test saw the bot make fails only after a full run, when
every code path the suite covers had its chance.
"""

from __future__ import annotations

from tests.support import aws_operations


def test_the_readme_iam_policy_grants_exactly_the_operations_the_bot_makes(full_suite: bool) -> None:
    granted = aws_operations.readme_policy_actions()
    # The DynamoDB store's actions are granted by deploy/template.yaml's roles (checked below), not this block.
    used = {a: where for a, where in aws_operations.used().items() if not a.startswith("dynamodb:")}
    missing = {action: where for action, where in used.items() if action not in granted}
    assert not missing, f"the README's IAM policy lacks actions the bot makes (action → caller): {missing}"
    if full_suite:
        unused = sorted(granted - used.keys())
        assert not unused, f"the README's IAM policy grants actions the bot never made in the suite: {unused}"
    _the_templates_roles_grant_every_dynamodb_operation_the_store_makes(full_suite)


def test_the_recorder_counts_the_bots_calls_and_not_the_tests_set_up() -> None:
    from moto import mock_aws

    from bot.aws.clients import aws_client
    from bot.aws.traffic import LambdaTraffic
    from canary_demo.seed import LEGO_API, seed_lego_api

    with mock_aws():
        client = aws_client("lambda", region="us-east-1")
        before = aws_operations.used()
        seed_lego_api(client)  # set-up: not the bot
        client.list_functions()  # a test's own call: not the bot
        LambdaTraffic(client).get_alias(LEGO_API, "production")
        recorded = aws_operations.used()
    assert "lambda:GetAlias" in recorded
    assert "lambda:ListFunctions" not in recorded
    assert "lambda:CreateAlias" not in recorded and "lambda:CreateAlias" not in before


# init-store's calls run with an operator's credentials, not the bot's role.
INIT_STORE_ONLY = {"dynamodb:CreateTable", "dynamodb:UpdateTimeToLive", "dynamodb:DescribeTimeToLive"}
# A transaction is authorised item by item.
TRANSACTION = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
}


def _the_templates_roles_grant_every_dynamodb_operation_the_store_makes(full_suite: bool) -> None:
    """Part of the test above (which runs last): deploy/template.yaml's roles against the store's calls."""
    import yaml

    from tests.test_deploy_template import TEMPLATE, _actions, _CfnLoader

    template = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    used = {a for a in aws_operations.used() if a.startswith("dynamodb:")} - INIT_STORE_ONLY
    if full_suite:
        assert "dynamodb:TransactWriteItems" in used, "the suite made no DynamoDB call: nothing was compared"
    if "dynamodb:TransactWriteItems" in used:
        used = (used - {"dynamodb:TransactWriteItems"}) | TRANSACTION
    for role in ("BotRole", "ResponderRole"):
        missing = used - _actions(template, role)
        assert not missing, f"{role} lacks DynamoDB actions the store makes: {missing}"
