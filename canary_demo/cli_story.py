"""The terminal story: the seed's canary run with the CLI against an in-process AWS (moto)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.actors import cli_actor
from bot.aws.clients import lambda_client
from bot.aws.traffic import LambdaTraffic
from bot.cli_verbs import run
from bot.clock import SystemClock
from bot.config import load_policy
from bot.console import Console
from bot.service import CanaryService
from bot.store import open_store
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


def read_alias(client: LambdaClient) -> tuple[str, dict[str, float]]:
    got = client.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
    return got["FunctionVersion"], dict(got.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}))


def cli_story(console: Console) -> bool:
    """Start → status → promote; then a second canary started and rolled back. True when both ended right."""
    from moto import mock_aws

    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        client = lambda_client(region="us-east-1")
        seed_lego_api(client)
        service = CanaryService(
            traffic=LambdaTraffic(client),
            store=open_store(f"sqlite:///{Path(tmp) / 'demo.db'}"),
            policy=load_policy(None),
            clock=SystemClock(),
        )

        def step(user: str, line: str) -> int:
            console.say(f"\n{user}$ canary-bot {line}")
            code = run(line.split(), service, cli_actor(user), console)
            version, weights = read_alias(client)
            console.say(f"  ↳ exit {code} · alias read back: FunctionVersion={version} weights={weights}")
            return code

        console.say("In-process AWS (moto): production-lego-api v1 (in-memory cache) on alias production,")
        console.say("v2 published with REDIS_URL. Policy: the seed runbook's numbers.")
        ok = step("maria", f"start {LEGO_API} 2 --yes") == 0
        ok &= step("maria", f"status {LEGO_API}") == 0
        ok &= step("joe", f"promote {LEGO_API} --yes") == 0
        first = read_alias(client) == ("2", {})
        ok &= step("maria", f"start {LEGO_API} --publish --set CACHE_TTL_SECONDS=300 --yes") == 0
        ok &= step("joe", f"rollback {LEGO_API} --reason cache-hit-rate-below-80% --yes") == 0
        second = read_alias(client) == ("2", {})
        step("maria", f"history {LEGO_API}")
        console.say("")
        console.say(f"CLI story: promote {'✅' if first else '🔴'} · rollback {'✅' if second else '🔴'}")
        return bool(ok and first and second)
