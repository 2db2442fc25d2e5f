"""LambdaTraffic where moto is unfaithful: RevisionId guards, HTTP 412, failed updates (botocore Stubber).

Also the client the adapter is built with: its retries must leave a 412 alone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import Stubber

from bot.aws.clients import MAX_ATTEMPTS, aws_client, lambda_client
from bot.aws.traffic import LambdaTraffic
from bot.ports import (
    AliasDrift,
    AliasNotFound,
    AwsFailure,
    FunctionNotFound,
    InvalidChange,
    PublishConflict,
    PublishedVersion,
)
from tests.support.lambda_world import use_fake_aws_credentials

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

FUNCTION = "production-lego-api"
ALIAS = "production"
OLD_ENV = {"DATABASE_URL": "postgresql://db/lego", "JWT_SECRET": "s"}
NEW_ENV = {**OLD_ENV, "REDIS_URL": "redis://cache:6379"}


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> LambdaClient:
    use_fake_aws_credentials(monkeypatch)
    return lambda_client(region="us-east-1")


@pytest.fixture
def stub(client: LambdaClient) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber


@pytest.fixture
def traffic(client: LambdaClient) -> LambdaTraffic:
    # No pause between polls of the update waiter: the Stubber answers at once.
    return LambdaTraffic(client, update_wait_delay_seconds=0, update_wait_max_attempts=3)


@pytest.fixture
def calls(client: LambdaClient) -> list[str]:
    """Names of the Lambda operations the client was asked to make, in order (stubbed or not)."""
    made: list[str] = []

    def record(model: Any, **_: Any) -> None:
        made.append(model.name)

    client.meta.events.register("provide-client-params.lambda", record)
    return made


# ---------------------------------------------------------------- canned answers


def version_found(stub: Stubber, version: str) -> None:
    stub.add_response(
        "get_function_configuration",
        {"FunctionName": FUNCTION, "Version": version},
        {"FunctionName": FUNCTION, "Qualifier": version},
    )


def configuration(env: dict[str, str], revision: str, sha: str, **extra: Any) -> dict[str, Any]:
    return {
        "FunctionName": FUNCTION,
        "Version": "$LATEST",
        "Environment": {"Variables": env},
        "RevisionId": revision,
        "CodeSha256": sha,
        **extra,
    }


def update_status(status: str, **reason: str) -> dict[str, Any]:
    return {"Configuration": {"FunctionName": FUNCTION, "LastUpdateStatus": status, **reason}}


def read_then_update(stub: Stubber) -> None:
    """$LATEST read at rev-a, our environment written guarded by rev-a."""
    stub.add_response(
        "get_function_configuration", configuration(OLD_ENV, "rev-a", "sha-a"), {"FunctionName": FUNCTION}
    )
    stub.add_response(
        "update_function_configuration",
        configuration(NEW_ENV, "rev-b", "sha-a", LastUpdateStatus="InProgress"),
        {"FunctionName": FUNCTION, "Environment": {"Variables": NEW_ENV}, "RevisionId": "rev-a"},
    )


def publish_redis(traffic: LambdaTraffic) -> PublishedVersion:
    return traffic.publish_version(
        FUNCTION, set_env={"REDIS_URL": "redis://cache:6379"}, unset_env=[], description="redis"
    )


# ---------------------------------------------------------------- alias routing


def test_update_routing_sends_the_revision_read_and_returns_what_lambda_wrote(
    stub: Stubber, traffic: LambdaTraffic
) -> None:
    version_found(stub, "1")
    version_found(stub, "2")
    stub.add_response(
        "update_alias",
        {
            "Name": ALIAS,
            "FunctionVersion": "1",
            "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.05}},
            "RevisionId": "rev-new",
        },
        {
            "FunctionName": FUNCTION,
            "Name": ALIAS,
            "FunctionVersion": "1",
            "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.05}},
            "RevisionId": "rev-read",
        },
    )

    written = traffic.update_routing(
        FUNCTION, ALIAS, version="1", weights={"2": 0.05}, revision_id="rev-read"
    )

    assert (written.version, written.weights, written.revision_id) == ("1", {"2": 0.05}, "rev-new")
    stub.assert_no_pending_responses()


def test_precondition_failed_on_update_alias_is_drift_and_is_not_retried(
    stub: Stubber, traffic: LambdaTraffic, calls: list[str]
) -> None:
    version_found(stub, "1")
    version_found(stub, "2")
    stub.add_client_error(
        "update_alias",
        service_error_code="PreconditionFailedException",
        service_message="The Revision Id provided does not match the latest Revision Id.",
        http_status_code=412,
        expected_params={
            "FunctionName": FUNCTION,
            "Name": ALIAS,
            "FunctionVersion": "1",
            "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25}},
            "RevisionId": "rev-stale",
        },
    )

    with pytest.raises(
        AliasDrift, match=r"production-lego-api:production changed since we read it \(revision rev-stale\)"
    ):
        traffic.update_routing(FUNCTION, ALIAS, version="1", weights={"2": 0.25}, revision_id="rev-stale")

    assert calls.count("UpdateAlias") == 1
    stub.assert_no_pending_responses()


def test_promote_clears_routing_with_an_empty_weight_map(stub: Stubber, traffic: LambdaTraffic) -> None:
    version_found(stub, "2")
    stub.add_response(
        "update_alias",
        {"Name": ALIAS, "FunctionVersion": "2", "RevisionId": "rev-new"},
        {
            "FunctionName": FUNCTION,
            "Name": ALIAS,
            "FunctionVersion": "2",
            "RoutingConfig": {"AdditionalVersionWeights": {}},
            "RevisionId": "rev-read",
        },
    )

    written = traffic.update_routing(FUNCTION, ALIAS, version="2", weights={}, revision_id="rev-read")

    assert (written.version, written.weights) == ("2", {})


@pytest.mark.parametrize(
    ("version", "weights"),
    [
        ("1", {"2": 0.0}),
        ("1", {"2": 1.0}),
        ("1", {"2": 1.5}),
        ("1", {"2": 0.05, "3": 0.05}),
        ("1", {"1": 0.05}),
    ],
    ids=["zero", "one", "above-one", "two-extra-versions", "primary-version"],
)
def test_malformed_routing_is_refused_before_any_aws_call(
    stub: Stubber, traffic: LambdaTraffic, calls: list[str], version: str, weights: dict[str, float]
) -> None:
    with pytest.raises(InvalidChange):
        traffic.update_routing(FUNCTION, ALIAS, version=version, weights=weights, revision_id="rev")

    assert calls == []


def test_missing_alias_is_told_apart_from_missing_function_without_reading_messages(
    stub: Stubber, traffic: LambdaTraffic
) -> None:
    stub.add_client_error("get_alias", "ResourceNotFoundException", "not found", http_status_code=404)
    stub.add_response("get_function_configuration", {"FunctionName": FUNCTION}, {"FunctionName": FUNCTION})
    stub.add_client_error("get_alias", "ResourceNotFoundException", "not found", http_status_code=404)
    stub.add_client_error(
        "get_function_configuration", "ResourceNotFoundException", "not found", http_status_code=404
    )

    with pytest.raises(AliasNotFound):
        traffic.get_alias(FUNCTION, ALIAS)
    with pytest.raises(FunctionNotFound, match="function production-lego-api not found in us-east-1"):
        traffic.get_alias(FUNCTION, ALIAS)


def test_other_aws_errors_carry_code_and_message(stub: Stubber, traffic: LambdaTraffic) -> None:
    stub.add_client_error(
        "get_alias",
        "AccessDeniedException",
        "not authorized to perform lambda:GetAlias",
        http_status_code=403,
    )

    with pytest.raises(AwsFailure, match="AccessDeniedException: not authorized to perform lambda:GetAlias"):
        traffic.get_alias(FUNCTION, ALIAS)


# ---------------------------------------------------------------- publishing


def test_publish_is_guarded_by_the_revisions_and_code_it_read(stub: Stubber, traffic: LambdaTraffic) -> None:
    read_then_update(stub)
    stub.add_response("get_function", update_status("InProgress"), {"FunctionName": FUNCTION})
    stub.add_response("get_function", update_status("Successful"), {"FunctionName": FUNCTION})
    stub.add_response(
        "get_function_configuration", configuration(NEW_ENV, "rev-c", "sha-c"), {"FunctionName": FUNCTION}
    )
    stub.add_response(
        "publish_version",
        {"FunctionName": FUNCTION, "Version": "42", "CodeSha256": "sha-c", "Description": "redis"},
        {"FunctionName": FUNCTION, "CodeSha256": "sha-c", "RevisionId": "rev-c", "Description": "redis"},
    )

    published = publish_redis(traffic)

    assert (published.version, published.code_sha256, published.description) == ("42", "sha-c", "redis")
    stub.assert_no_pending_responses()


def test_precondition_failed_on_publish_is_a_conflict_and_nothing_is_published(
    stub: Stubber, traffic: LambdaTraffic, calls: list[str]
) -> None:
    read_then_update(stub)
    stub.add_response("get_function", update_status("Successful"), {"FunctionName": FUNCTION})
    stub.add_response(
        "get_function_configuration", configuration(NEW_ENV, "rev-c", "sha-c"), {"FunctionName": FUNCTION}
    )
    stub.add_client_error(
        "publish_version", "PreconditionFailedException", "revision mismatch", http_status_code=412
    )

    with pytest.raises(
        PublishConflict, match=r"\$LATEST of production-lego-api changed under us; nothing published"
    ):
        publish_redis(traffic)

    assert calls.count("PublishVersion") == 1
    stub.assert_no_pending_responses()


def test_precondition_failed_on_configuration_update_publishes_nothing(
    stub: Stubber, traffic: LambdaTraffic, calls: list[str]
) -> None:
    stub.add_response(
        "get_function_configuration", configuration(OLD_ENV, "rev-a", "sha-a"), {"FunctionName": FUNCTION}
    )
    stub.add_client_error(
        "update_function_configuration",
        "PreconditionFailedException",
        "revision mismatch",
        http_status_code=412,
    )

    with pytest.raises(PublishConflict):
        publish_redis(traffic)

    assert "PublishVersion" not in calls
    stub.assert_no_pending_responses()


def test_update_already_in_progress_is_a_conflict(
    stub: Stubber, traffic: LambdaTraffic, calls: list[str]
) -> None:
    stub.add_response(
        "get_function_configuration", configuration(OLD_ENV, "rev-a", "sha-a"), {"FunctionName": FUNCTION}
    )
    stub.add_client_error(
        "update_function_configuration",
        "ResourceConflictException",
        "The operation cannot be performed at this time. An update is in progress for resource",
        http_status_code=409,
    )

    with pytest.raises(PublishConflict):
        publish_redis(traffic)

    assert "PublishVersion" not in calls


def test_env_key_both_set_and_unset_is_refused_before_any_aws_call(
    stub: Stubber, traffic: LambdaTraffic, calls: list[str]
) -> None:
    with pytest.raises(InvalidChange, match="REDIS_URL"):
        traffic.publish_version(FUNCTION, set_env={"REDIS_URL": "x"}, unset_env=["REDIS_URL"], description="")

    assert calls == []


def test_failed_configuration_update_is_an_aws_failure_with_the_reason(
    stub: Stubber, traffic: LambdaTraffic, calls: list[str]
) -> None:
    read_then_update(stub)
    stub.add_response(
        "get_function",
        update_status(
            "Failed",
            LastUpdateStatusReason="The security group sg-0abc does not exist",
            LastUpdateStatusReasonCode="InvalidSecurityGroup",
        ),
        {"FunctionName": FUNCTION},
    )

    with pytest.raises(
        AwsFailure, match="sg-0abc does not exist \\(InvalidSecurityGroup\\); nothing published"
    ):
        publish_redis(traffic)

    assert "PublishVersion" not in calls
    stub.assert_no_pending_responses()


def test_latest_rewritten_by_someone_else_after_our_update_is_not_published(
    stub: Stubber, traffic: LambdaTraffic, calls: list[str]
) -> None:
    read_then_update(stub)
    stub.add_response("get_function", update_status("Successful"), {"FunctionName": FUNCTION})
    theirs = {**OLD_ENV, "REDIS_URL": "redis://someone-else:6379"}
    stub.add_response(
        "get_function_configuration", configuration(theirs, "rev-x", "sha-x"), {"FunctionName": FUNCTION}
    )

    with pytest.raises(PublishConflict):
        publish_redis(traffic)

    assert "PublishVersion" not in calls


def test_update_that_never_settles_is_an_aws_failure(stub: Stubber, traffic: LambdaTraffic) -> None:
    read_then_update(stub)
    for _ in range(3):  # the fixture's waiter gives up after 3 polls
        stub.add_response("get_function", update_status("InProgress"), {"FunctionName": FUNCTION})

    with pytest.raises(AwsFailure, match="did not finish updating"):
        publish_redis(traffic)


# ---------------------------------------------------------------- the client's retries


class _AliasServer(BaseHTTPRequestHandler):
    """A Lambda endpoint whose versions exist and whose UpdateAlias always answers 412."""

    alias_writes = 0

    def do_GET(self) -> None:  # GetFunctionConfiguration for the version checks
        self._answer(200, {"FunctionName": FUNCTION, "Version": "1"})

    def do_PUT(self) -> None:  # UpdateAlias
        type(self).alias_writes += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(
            412,
            {"Type": "User", "message": "The Revision Id provided does not match the latest Revision Id."},
            error_type="PreconditionFailedException",
        )

    def _answer(self, status: int, body: dict[str, Any], error_type: str | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint_412() -> Iterator[str]:
    _AliasServer.alias_writes = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AliasServer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_configured_client_sends_a_412_update_alias_exactly_once(
    monkeypatch: pytest.MonkeyPatch, endpoint_412: str
) -> None:
    use_fake_aws_credentials(monkeypatch)
    traffic = LambdaTraffic(lambda_client(region="us-east-1", endpoint_url=endpoint_412))

    with pytest.raises(AliasDrift):
        traffic.update_routing(FUNCTION, ALIAS, version="1", weights={}, revision_id="rev-stale")

    assert _AliasServer.alias_writes == 1


def test_client_retries_in_standard_mode_with_bounded_attempts_and_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_fake_aws_credentials(monkeypatch)
    monkeypatch.delenv("CANARY_AWS_RETRY_MODE", raising=False)

    config: Any = lambda_client().meta.config  # botocore's stubs omit Config's attributes

    assert MAX_ATTEMPTS == 5
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert 0 < config.connect_timeout <= 10
    assert 0 < config.read_timeout <= 60


def test_retry_mode_can_be_adaptive(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_aws_credentials(monkeypatch)
    monkeypatch.setenv("CANARY_AWS_RETRY_MODE", "adaptive")

    config: Any = lambda_client().meta.config

    assert config.retries["mode"] == "adaptive"


def test_unknown_retry_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_aws_credentials(monkeypatch)
    monkeypatch.setenv("CANARY_AWS_RETRY_MODE", "legacy-ish")

    with pytest.raises(ValueError, match="CANARY_AWS_RETRY_MODE"):
        lambda_client()


def test_explicit_endpoint_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_aws_credentials(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://from-environment:5000")

    assert aws_client("sqs", region="eu-west-1").meta.endpoint_url == "http://from-environment:5000"
    explicit = aws_client("sqs", region="eu-west-1", endpoint_url="http://explicit:4566")
    assert explicit.meta.endpoint_url == "http://explicit:4566"
    assert explicit.meta.region_name == "eu-west-1"
