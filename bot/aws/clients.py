"""boto3 clients built one way: bounded retries and timeouts, so a slow AWS answer never hangs a command.

boto3 reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) from the environment by itself, which is how the
demo points every client at moto; an explicit `endpoint_url` argument wins over the environment.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, cast

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

RetryMode = Literal["standard", "adaptive"]

RETRY_MODE_ENV = "CANARY_AWS_RETRY_MODE"
# Attempts in all, as AWS_MAX_ATTEMPTS counts them: first try + 4 retries with jittered backoff. (botocore's
# Config key `max_attempts` would count retries only, making it 6; `total_max_attempts` is unambiguous.)
MAX_ATTEMPTS = 5
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30  # control-plane calls answer well under a second; this bounds a stuck socket
_SHARED_LOADER = botocore.loaders.create_loader()


def retry_mode() -> RetryMode:
    """The retry mode chosen by CANARY_AWS_RETRY_MODE; 'standard' when unset."""
    mode = os.environ.get(RETRY_MODE_ENV, "").strip().lower() or "standard"
    if mode == "standard":
        return "standard"
    if mode == "adaptive":
        return "adaptive"
    raise ValueError(f"{RETRY_MODE_ENV} must be 'standard' or 'adaptive', not {mode!r}")


def client_config() -> Config:
    return Config(
        retries={"mode": retry_mode(), "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


def aws_client(
    service: str, *, region: str | None = None, endpoint_url: str | None = None, config: Config | None = None
) -> Any:
    """A boto3 client for `service`. region=None uses the environment (AWS_REGION / AWS_DEFAULT_REGION).
    `config` replaces the bounded defaults (client_config) for callers that must give up sooner."""
    session = _new_session()
    kwargs: dict[str, Any] = {"config": config or client_config()}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return session.client(service, **kwargs)  # type: ignore[call-overload]


def _new_session() -> boto3.session.Session:
    # A session per client, because creating clients from one shared session is not thread-safe; the model
    # loader is shared, because parsing botocore's JSON models costs ~0.3 s per session otherwise.
    core = botocore.session.get_session()
    core.register_component("data_loader", _SHARED_LOADER)
    return boto3.session.Session(botocore_session=core)


def lambda_client(*, region: str | None = None, endpoint_url: str | None = None) -> LambdaClient:
    return cast("LambdaClient", aws_client("lambda", region=region, endpoint_url=endpoint_url))


def cloudwatch_client(*, region: str | None = None, endpoint_url: str | None = None) -> CloudWatchClient:
    return cast("CloudWatchClient", aws_client("cloudwatch", region=region, endpoint_url=endpoint_url))


def logs_client(*, region: str | None = None, endpoint_url: str | None = None) -> CloudWatchLogsClient:
    return cast("CloudWatchLogsClient", aws_client("logs", region=region, endpoint_url=endpoint_url))


def sns_client(*, region: str | None = None, endpoint_url: str | None = None) -> SNSClient:
    return cast("SNSClient", aws_client("sns", region=region, endpoint_url=endpoint_url))


def sqs_client(*, region: str | None = None, endpoint_url: str | None = None) -> SQSClient:
    return cast("SQSClient", aws_client("sqs", region=region, endpoint_url=endpoint_url))
