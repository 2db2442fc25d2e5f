"""Publishing a version with configuration changes: the environment arithmetic, what LambdaTraffic leaves in
moto, the fake's Lambda-like rules, and the seed world served by a moto server (the demo's set-up)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from moto.server import ThreadedMotoServer

from bot.aws.clients import lambda_client
from bot.aws.traffic import LambdaTraffic, merged_env
from bot.ports import AliasNotFound, AwsFailure, FunctionNotFound, InvalidChange
from canary_demo.fakes.traffic import FakeTraffic, lego_api_world
from tests.support.lambda_world import (
    BASE_ENV,
    LEGO_API,
    PRODUCTION_ALIAS,
    REDIS_URL,
    moto_lego_world,
    seed_lego_api,
    use_fake_aws_credentials,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


# ---------------------------------------------------------------- environment arithmetic


def test_merged_env_sets_overrides_and_unsets() -> None:
    current = {"A": "1", "B": "2", "C": "3"}

    assert merged_env(current, {"B": "20", "D": "4"}, ["C"]) == {"A": "1", "B": "20", "D": "4"}
    assert current == {"A": "1", "B": "2", "C": "3"}


def test_merged_env_ignores_unsetting_absent_keys() -> None:
    assert merged_env({"A": "1"}, {}, ["ZZZ"]) == {"A": "1"}


def test_merged_env_refuses_a_key_both_set_and_unset() -> None:
    with pytest.raises(InvalidChange, match="B"):
        merged_env({"A": "1"}, {"B": "2"}, ["B"])


# ---------------------------------------------------------------- LambdaTraffic on moto


@pytest.fixture
def lego(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaClient]:
    use_fake_aws_credentials(monkeypatch)
    with moto_lego_world() as client:
        yield client


def test_published_version_is_latest_code_with_our_description(lego: LambdaClient) -> None:
    published = LambdaTraffic(lego).publish_version(
        LEGO_API, set_env={"REDIS_URL": "redis://blue:6379"}, unset_env=[], description="WISH-2124 redis"
    )

    version = lego.get_function_configuration(FunctionName=LEGO_API, Qualifier=published.version)
    latest = lego.get_function_configuration(FunctionName=LEGO_API)
    assert published.code_sha256 == version["CodeSha256"] == latest["CodeSha256"]
    assert version["Description"] == "WISH-2124 redis"
    # $LATEST keeps the environment we published, so the next publish starts from it.
    assert latest["Environment"]["Variables"]["REDIS_URL"] == "redis://blue:6379"


def test_unsetting_every_variable_publishes_an_empty_environment(lego: LambdaClient) -> None:
    published = LambdaTraffic(lego).publish_version(
        LEGO_API, set_env={}, unset_env=[*BASE_ENV, "REDIS_URL"], description=""
    )

    version = lego.get_function_configuration(FunctionName=LEGO_API, Qualifier=published.version)
    assert version.get("Environment", {}).get("Variables", {}) == {}


def test_publish_refused_for_a_conflicting_change_leaves_latest_untouched(lego: LambdaClient) -> None:
    before = lego.get_function_configuration(FunctionName=LEGO_API)["Environment"]

    with pytest.raises(InvalidChange):
        LambdaTraffic(lego).publish_version(LEGO_API, set_env={"A": "1"}, unset_env=["A"], description="")

    assert lego.get_function_configuration(FunctionName=LEGO_API)["Environment"] == before


# ---------------------------------------------------------------- FakeTraffic's Lambda-like rules


def test_fake_publish_without_change_returns_the_last_version_like_lambda() -> None:
    fake = lego_api_world()

    again = fake.publish_version(LEGO_API, set_env={"REDIS_URL": REDIS_URL}, unset_env=[], description="x")

    assert again.version == "2"
    assert not fake.version_exists(LEGO_API, "3")


def test_fake_publish_numbers_after_the_highest_version() -> None:
    fake = FakeTraffic()
    fake.add_function("f", versions=["1", "9", "10"], env={"A": "1"})

    published = fake.publish_version("f", set_env={"A": "2"}, unset_env=[], description="")

    assert published.version == "11"
    assert fake.version_env("f", "11") == {"A": "2"}
    assert fake.version_env("f", "$LATEST") == {"A": "2"}


def test_fake_injected_failure_changes_nothing_and_is_used_once() -> None:
    fake = lego_api_world()
    fake.fail_next(AwsFailure("throttled"))

    with pytest.raises(AwsFailure):
        fake.publish_version(LEGO_API, set_env={"NEW": "1"}, unset_env=[], description="")

    assert fake.version_env(LEGO_API, "$LATEST") == {**BASE_ENV, "REDIS_URL": REDIS_URL}
    assert fake.publish_version(LEGO_API, set_env={"NEW": "1"}, unset_env=[], description="").version == "3"


def test_fake_removed_function_and_its_aliases_are_gone() -> None:
    fake = lego_api_world()

    fake.remove_function(LEGO_API)

    with pytest.raises(FunctionNotFound):
        fake.get_alias(LEGO_API, PRODUCTION_ALIAS)
    fake.add_function(LEGO_API, versions=["1"])
    with pytest.raises(AliasNotFound):
        fake.get_alias(LEGO_API, PRODUCTION_ALIAS)


def test_fake_records_successful_routing_writes_only() -> None:
    fake = lego_api_world()
    read = fake.get_alias(LEGO_API, PRODUCTION_ALIAS)
    fake.fail_next(AwsFailure("throttled"))

    with pytest.raises(AwsFailure):
        fake.update_routing(
            LEGO_API, PRODUCTION_ALIAS, version="1", weights={"2": 0.05}, revision_id=read.revision_id
        )
    written = fake.update_routing(
        LEGO_API, PRODUCTION_ALIAS, version="1", weights={"2": 0.05}, revision_id=read.revision_id
    )

    assert fake.routing_writes == [written]


# ---------------------------------------------------------------- the seed world on a moto server


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    use_fake_aws_credentials(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    yield url
    # The in-process server shares moto's backends with mock_aws: leave nothing behind for other tests.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=5).close()
    server.stop()


def test_seed_world_builds_on_a_moto_server_reached_through_endpoint_url(moto_server: str) -> None:
    client = lambda_client(region="us-east-1", endpoint_url=moto_server)

    seed_lego_api(client)  # its IAM role must land on the same server, or create_function is refused

    traffic = LambdaTraffic(client)
    alias = traffic.get_alias(LEGO_API, PRODUCTION_ALIAS)
    assert (alias.version, alias.weights) == ("1", {})
    v1 = client.get_function_configuration(FunctionName=LEGO_API, Qualifier="1")["Environment"]["Variables"]
    v2 = client.get_function_configuration(FunctionName=LEGO_API, Qualifier="2")["Environment"]["Variables"]
    assert v1 == dict(BASE_ENV)
    assert v2 == {**BASE_ENV, "REDIS_URL": REDIS_URL}
