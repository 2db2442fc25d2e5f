"""The seed's Lambda world in moto, for tests. The seeding itself is canary_demo.seed (the demo uses it too).

Use from a fixture:

    @pytest.fixture
    def lego(monkeypatch):
        use_fake_aws_credentials(monkeypatch)
        with moto_lego_world() as client:
            yield client
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest
from moto import mock_aws

from bot.aws.clients import lambda_client
from canary_demo.seed import (
    BASE_ENV,
    LEGO_API,
    PRODUCTION_ALIAS,
    REDIS_ENV,
    REDIS_URL,
    create_function,
    publish,
    seed_lego_api,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

__all__ = [
    "BASE_ENV",
    "LEGO_API",
    "PRODUCTION_ALIAS",
    "REDIS_ENV",
    "REDIS_URL",
    "REGION",
    "create_function",
    "moto_lambda",
    "moto_lego_world",
    "publish",
    "seed_lego_api",
    "use_fake_aws_credentials",
]

REGION = "us-east-1"


def use_fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, region: str = REGION) -> None:
    """Credentials moto accepts, and nothing that could send a call to a real account or a moto server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def moto_lambda(region: str = REGION) -> Iterator[LambdaClient]:
    """An empty moto Lambda (and IAM) for the duration of the block."""
    with mock_aws():
        yield lambda_client(region=region)


@contextmanager
def moto_lego_world(region: str = REGION) -> Iterator[LambdaClient]:
    """moto holding the seed's world: production-lego-api v1 (no Redis), v2 (REDIS_URL), production → v1."""
    with moto_lambda(region) as client:
        seed_lego_api(client)
        yield client
