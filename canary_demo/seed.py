"""The seed runbook's Lambda world, built in moto (or any Lambda API) for the demo and end-to-end tests.

production-lego-api: v1 without Redis, v2 with REDIS_URL (published the runbook's way: update the
configuration, then publish), alias `production` → v1. Meant for moto: it creates an IAM role and a function
that does nothing.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from bot.aws.clients import aws_client

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

LEGO_API = "production-lego-api"
PRODUCTION_ALIAS = "production"
REDIS_URL = "redis://production-cache.cache.amazonaws.com:6379"
# Placeholders: the demo world holds no real secrets.
BASE_ENV: Mapping[str, str] = {
    "DATABASE_URL": "postgresql://lego@production-db.internal:5432/lego",
    "JWT_SECRET": "demo-not-a-secret",
}
REDIS_ENV: Mapping[str, str] = {**BASE_ENV, "REDIS_URL": REDIS_URL}

ROLE_NAME = "canary-bot-demo-lambda"
RUNTIME: Final = "python3.12"
_HANDLER_SOURCE = "def handler(event, context):\n    return {'statusCode': 200}\n"
_ASSUME_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def seed_lego_api(
    lambda_client: LambdaClient, iam_client: Any | None = None, *, function: str = LEGO_API
) -> None:
    """Create the seed's function, versions 1 and 2, and alias production → 1.

    `function` renames it, so tests can seed many independent copies into one moto.
    """
    role_arn = lambda_role_arn(iam_client or _iam_beside(lambda_client))
    create_function(lambda_client, function, BASE_ENV, role_arn=role_arn)
    publish(lambda_client, function, BASE_ENV)
    publish(lambda_client, function, REDIS_ENV)
    lambda_client.create_alias(FunctionName=function, Name=PRODUCTION_ALIAS, FunctionVersion="1")


def create_function(
    client: LambdaClient,
    name: str,
    env: Mapping[str, str],
    *,
    role_arn: str | None = None,
    iam_client: Any | None = None,
) -> None:
    """A do-nothing Python function with `env` on $LATEST; the role moto insists on is made if not given."""
    if role_arn is None:
        role_arn = lambda_role_arn(iam_client or _iam_beside(client))
    client.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Role=role_arn,
        Handler="app.handler",
        Code={"ZipFile": _handler_zip()},
        Environment={"Variables": dict(env)},
        Publish=False,
    )
    client.get_waiter("function_active_v2").wait(FunctionName=name)


def publish(client: LambdaClient, name: str, env: Mapping[str, str], description: str = "") -> str:
    """Set $LATEST's environment to `env`, wait for the update, publish; return the version number."""
    client.update_function_configuration(FunctionName=name, Environment={"Variables": dict(env)})
    client.get_waiter("function_updated_v2").wait(FunctionName=name)
    return client.publish_version(FunctionName=name, Description=description)["Version"]


def lambda_role_arn(iam_client: Any) -> str:
    """The demo's Lambda execution role, created on first use."""
    try:
        return str(iam_client.get_role(RoleName=ROLE_NAME)["Role"]["Arn"])
    except iam_client.exceptions.NoSuchEntityException:
        created = iam_client.create_role(
            RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(_ASSUME_ROLE_POLICY)
        )
        return str(created["Role"]["Arn"])


def _iam_beside(lambda_client: LambdaClient) -> Any:
    """An IAM client talking to the same place as `lambda_client` (a moto server, or mock_aws)."""
    endpoint = lambda_client.meta.endpoint_url
    # A non-AWS endpoint is a moto server serving every service; an AWS one is left to boto3 (and mock_aws).
    explicit = None if endpoint.rstrip("/").endswith(".amazonaws.com") else endpoint
    return aws_client("iam", region=lambda_client.meta.region_name, endpoint_url=explicit)


def _handler_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", _HANDLER_SOURCE)
    return buffer.getvalue()
