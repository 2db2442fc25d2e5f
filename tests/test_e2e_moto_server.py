"""End to end: the real `canary-bot` console script against `moto_server` reached through AWS_ENDPOINT_URL."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from canary_demo.moto_server import reset_moto, running_moto
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    with running_moto() as url:
        yield url


@pytest.fixture
def world(moto_server: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    reset_moto(moto_server)
    client = boto3.client("lambda", endpoint_url=moto_server, region_name="us-east-1")
    seed_lego_api(client, boto3.client("iam", endpoint_url=moto_server, region_name="us-east-1"))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server,
        "CANARY_STORE_URL": f"sqlite:///{tmp_path / 'canary.db'}",
    }
    env.pop("CANARY_POLICY_FILE", None)
    yield moto_server, env


def _cli(env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "canary-bot"), *words],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _alias(endpoint: str) -> tuple[str, dict[str, float]]:
    client = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
    got = client.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
    return got["FunctionVersion"], dict(got.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}))


def test_start_then_promote_through_the_console_script(world: tuple[str, dict[str, str]]) -> None:
    endpoint, env = world
    started = _cli(env, "start", LEGO_API, "2", "--yes")
    assert started.returncode == 0, started.stderr
    assert _alias(endpoint) == ("1", {"2": 0.05})

    promoted = _cli(env, "promote", LEGO_API, "--yes")
    assert promoted.returncode == 0, promoted.stderr
    assert _alias(endpoint) == ("2", {})


def test_start_then_rollback_and_history_names_the_os_user_and_host(
    world: tuple[str, dict[str, str]],
) -> None:
    endpoint, env = world
    assert _cli(env, "start", LEGO_API, "2", "--yes").returncode == 0
    rolled = _cli(env, "rollback", LEGO_API, "--reason", "error rate 2%", "--yes")
    assert rolled.returncode == 0, rolled.stderr
    assert _alias(endpoint) == ("1", {})

    history = _cli(env, "history", LEGO_API)
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    # The audit names the person as the operating system knows them, not as they declare themselves.
    me = f"by cli:{getpass.getuser()}@{socket.gethostname()}"
    assert any("start" in line and me in line for line in lines)
    assert any("rollback" in line and me in line and "error rate 2%" in line for line in lines)
