"""One contract for TrafficPort, run against FakeTraffic and against LambdaTraffic on moto.

moto ignores RevisionId on UpdateAlias (see TESTING.md), so the drift cases run on the fake only here; the
real adapter's drift handling is covered with botocore's Stubber in test_traffic_drift_stubber.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from bot.aws.traffic import LambdaTraffic
from bot.model import AliasState
from bot.ports import (
    AliasDrift,
    AliasNotFound,
    FunctionNotFound,
    InvalidChange,
    PublishConflict,
    TrafficPort,
    VersionNotFound,
)
from canary_demo.fakes.traffic import FakeTraffic, lego_api_world
from tests.support.lambda_world import (
    BASE_ENV,
    LEGO_API,
    PRODUCTION_ALIAS,
    REDIS_URL,
    moto_lambda,
    seed_lego_api,
    use_fake_aws_credentials,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


@dataclass
class World:
    """The seed's world behind a TrafficPort, plus a way to look at a version's environment."""

    traffic: TrafficPort
    function: str
    env_of: Callable[[str], dict[str, str]]  # version -> its environment variables
    fake: FakeTraffic | None = None  # set when the port is the fake (for drift set-ups)


def fake_world() -> World:
    fake = lego_api_world()
    return World(fake, LEGO_API, lambda version: fake.version_env(LEGO_API, version), fake)


def moto_world(client: LambdaClient, function: str) -> World:
    def env_of(version: str) -> dict[str, str]:
        configuration = client.get_function_configuration(FunctionName=function, Qualifier=version)
        return dict(configuration.get("Environment", {}).get("Variables", {}))

    return World(LambdaTraffic(client), function, env_of)


# One moto for the module (starting one and seeding it per test would make this file slow); each test that
# writes gets its own copy of the seed's function in it, named apart.
_copies = itertools.count(1)


@pytest.fixture(scope="module")
def moto_client() -> Iterator[LambdaClient]:
    with pytest.MonkeyPatch.context() as patch:
        use_fake_aws_credentials(patch)
        with moto_lambda() as client:
            seed_lego_api(client)
            yield client


@pytest.fixture(params=["fake", "moto"])
def world(request: pytest.FixtureRequest) -> World:
    """A fresh seed world, for tests that change it."""
    if request.param == "fake":
        return fake_world()
    client: LambdaClient = request.getfixturevalue("moto_client")
    function = f"{LEGO_API}-{next(_copies)}"
    seed_lego_api(client, function=function)
    return moto_world(client, function)


@pytest.fixture(params=["fake", "moto"])
def seed_world(request: pytest.FixtureRequest) -> World:
    """The shared seed world, for tests that only read it or whose writes must be refused."""
    if request.param == "fake":
        return fake_world()
    return moto_world(request.getfixturevalue("moto_client"), LEGO_API)


fake_only = pytest.mark.parametrize("world", ["fake"], indirect=True)


def production(world: World) -> AliasState:
    return world.traffic.get_alias(world.function, PRODUCTION_ALIAS)


def route(
    world: World, version: str, weights: dict[str, float], revision_id: str | None = None
) -> AliasState:
    revision = revision_id if revision_id is not None else production(world).revision_id
    return world.traffic.update_routing(
        world.function, PRODUCTION_ALIAS, version=version, weights=weights, revision_id=revision
    )


# ---------------------------------------------------------------- reading


def test_get_alias_reports_primary_version_without_routing(seed_world: World) -> None:
    state = production(seed_world)

    assert (state.function, state.alias) == (seed_world.function, PRODUCTION_ALIAS)
    assert (state.version, state.weights) == ("1", {})
    assert state.revision_id


def test_get_alias_of_unknown_function_names_function_and_region(seed_world: World) -> None:
    with pytest.raises(FunctionNotFound, match="function production-lego-apx not found in us-east-1"):
        seed_world.traffic.get_alias("production-lego-apx", PRODUCTION_ALIAS)


def test_get_alias_of_unknown_alias_raises_alias_not_found(seed_world: World) -> None:
    with pytest.raises(AliasNotFound, match="staging"):
        seed_world.traffic.get_alias(seed_world.function, "staging")


@pytest.mark.parametrize(("version", "exists"), [("1", True), ("2", True), ("3", False), ("$LATEST", False)])
def test_version_exists_only_for_published_versions(seed_world: World, version: str, exists: bool) -> None:
    assert seed_world.traffic.version_exists(seed_world.function, version) is exists


def test_alias_name_is_not_a_version(seed_world: World) -> None:
    # GetFunctionConfiguration accepts an alias as Qualifier; a canary version must be a number.
    assert seed_world.traffic.version_exists(seed_world.function, PRODUCTION_ALIAS) is False


def test_version_exists_on_unknown_function_raises_function_not_found(seed_world: World) -> None:
    with pytest.raises(FunctionNotFound):
        seed_world.traffic.version_exists("production-lego-apx", "1")


def test_seed_versions_differ_only_by_redis_url(seed_world: World) -> None:
    assert seed_world.env_of("1") == dict(BASE_ENV)
    assert seed_world.env_of("2") == {**BASE_ENV, "REDIS_URL": REDIS_URL}


def test_environment_keys_names_a_versions_variables_without_their_values(seed_world: World) -> None:
    function = seed_world.function
    assert seed_world.traffic.environment_keys(function, "1") == frozenset(BASE_ENV)
    assert seed_world.traffic.environment_keys(function, "2") == frozenset({*BASE_ENV, "REDIS_URL"})
    with pytest.raises(VersionNotFound):
        seed_world.traffic.environment_keys(function, "99")


# ---------------------------------------------------------------- routing


def test_start_canary_routes_weight_to_new_version(world: World) -> None:
    written = route(world, "1", {"2": 0.05})

    assert (written.version, written.weights) == ("1", {"2": 0.05})
    assert written == production(world)


def test_changing_weight_keeps_stable_as_primary(world: World) -> None:
    route(world, "1", {"2": 0.05})

    written = route(world, "1", {"2": 0.25})

    assert (written.version, written.weights) == ("1", {"2": 0.25})
    assert written == production(world)


def test_promote_makes_canary_primary_and_clears_routing(world: World) -> None:
    route(world, "1", {"2": 0.5})

    written = route(world, "2", {})

    assert (written.version, written.weights) == ("2", {})
    assert written == production(world)


def test_rollback_returns_all_traffic_to_stable(world: World) -> None:
    route(world, "1", {"2": 0.25})

    written = route(world, "1", {})

    assert (written.version, written.weights) == ("1", {})
    assert written == production(world)


def test_update_routing_of_unknown_alias_raises_alias_not_found(seed_world: World) -> None:
    with pytest.raises(AliasNotFound):
        seed_world.traffic.update_routing(
            seed_world.function, "staging", version="1", weights={"2": 0.05}, revision_id="r"
        )


def test_update_routing_of_unknown_function_raises_function_not_found(seed_world: World) -> None:
    with pytest.raises(FunctionNotFound):
        seed_world.traffic.update_routing(
            "production-lego-apx", PRODUCTION_ALIAS, version="1", weights={}, revision_id="r"
        )


@pytest.mark.parametrize(("version", "weights"), [("1", {"7": 0.05}), ("7", {}), ("$LATEST", {})])
def test_update_routing_to_unpublished_version_is_refused_and_alias_kept(
    seed_world: World, version: str, weights: dict[str, float]
) -> None:
    before = production(seed_world)

    with pytest.raises(VersionNotFound):
        route(seed_world, version, weights, before.revision_id)

    assert production(seed_world) == before


@pytest.mark.parametrize(
    "weights",
    [
        {"2": 0.0},
        {"2": 1.0},
        {"2": 1.5},
        {"2": -0.05},
        {"2": float("nan")},
        {"1": 0.05},
        {"2": 0.05, "3": 0.05},
    ],
    ids=["zero", "one", "above-one", "negative", "nan", "primary-version", "two-extra-versions"],
)
def test_malformed_routing_is_refused_and_alias_kept(seed_world: World, weights: dict[str, float]) -> None:
    before = production(seed_world)

    with pytest.raises(InvalidChange):
        route(seed_world, "1", weights, before.revision_id)

    assert production(seed_world) == before


@fake_only
def test_every_write_moves_the_revision(world: World) -> None:
    before = production(world)

    written = route(world, "1", {"2": 0.05}, before.revision_id)

    assert written.revision_id != before.revision_id


@fake_only
def test_write_with_stale_revision_raises_drift_and_keeps_their_change(world: World) -> None:
    assert world.fake is not None
    read = production(world)
    theirs = world.fake.force_change(world.function, PRODUCTION_ALIAS, "2")

    with pytest.raises(AliasDrift, match="changed since we read it"):
        route(world, "1", {"2": 0.05}, read.revision_id)

    assert production(world) == theirs


# ---------------------------------------------------------------- publishing


def test_publish_sets_and_unsets_environment_in_a_new_version(world: World) -> None:
    published = world.traffic.publish_version(
        world.function, set_env={"CACHE_TTL": "300"}, unset_env=["REDIS_URL"], description="ttl, no redis"
    )

    assert (published.function, published.version) == (world.function, "3")
    assert published.description == "ttl, no redis"
    assert published.code_sha256
    assert world.env_of("3") == {**BASE_ENV, "CACHE_TTL": "300"}
    assert world.traffic.version_exists(world.function, "3")


def test_publish_leaves_earlier_versions_and_alias_alone(world: World) -> None:
    alias_before = production(world)

    world.traffic.publish_version(
        world.function, set_env={"REDIS_URL": "redis://other:6379"}, unset_env=[], description=""
    )

    assert world.env_of("2")["REDIS_URL"] == REDIS_URL
    assert production(world) == alias_before


def test_unsetting_an_absent_key_is_not_an_error(world: World) -> None:
    published = world.traffic.publish_version(
        world.function, set_env={"FEATURE": "on"}, unset_env=["NEVER_SET"], description=""
    )

    assert world.env_of(published.version) == {**BASE_ENV, "REDIS_URL": REDIS_URL, "FEATURE": "on"}


def test_publish_without_change_returns_a_version_with_that_environment(world: World) -> None:
    # Lambda (and the fake) hand back the existing version; moto publishes a new one. Either way, same env.
    published = world.traffic.publish_version(world.function, set_env={}, unset_env=[], description="")

    assert world.env_of(published.version) == world.env_of("2")


def test_publish_setting_and_unsetting_the_same_key_is_refused(seed_world: World) -> None:
    with pytest.raises(InvalidChange, match="REDIS_URL"):
        seed_world.traffic.publish_version(
            seed_world.function, set_env={"REDIS_URL": "x"}, unset_env=["REDIS_URL"], description=""
        )

    assert not seed_world.traffic.version_exists(seed_world.function, "3")


def test_publish_on_unknown_function_raises_function_not_found(seed_world: World) -> None:
    with pytest.raises(FunctionNotFound):
        seed_world.traffic.publish_version(
            "production-lego-apx", set_env={"A": "1"}, unset_env=[], description=""
        )


# ---------------------------------------------------------------- the emergency fallback
def test_fallback_publishes_the_serving_code_without_the_unset_keys(world: World) -> None:
    published = world.traffic.publish_fallback(
        world.function, from_version="2", unset_env=["REDIS_URL"], description="canary-bot fallback f-1"
    )

    assert published.version == "3"
    assert world.env_of("3") == BASE_ENV
    assert world.env_of("2")["REDIS_URL"] == REDIS_URL
    assert published.description == "canary-bot fallback f-1"


def test_fallback_with_the_same_description_publishes_nothing_new(world: World) -> None:
    first = world.traffic.publish_fallback(
        world.function, from_version="2", unset_env=["REDIS_URL"], description="canary-bot fallback f-1"
    )
    again = world.traffic.publish_fallback(
        world.function, from_version="2", unset_env=["REDIS_URL"], description="canary-bot fallback f-1"
    )

    assert again.version == first.version
    assert not world.traffic.version_exists(world.function, "4")


@fake_only
def test_fallback_refuses_when_latest_carries_other_code(world: World) -> None:
    assert world.fake is not None
    world.fake.change_latest_code(world.function, "newer build")

    with pytest.raises(PublishConflict, match="other code"):
        world.traffic.publish_fallback(
            world.function, from_version="2", unset_env=["REDIS_URL"], description="canary-bot fallback f-1"
        )

    assert not world.traffic.version_exists(world.function, "3")
