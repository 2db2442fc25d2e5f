"""The demo's preflight: the seed runbook's world as the checklist sees it.

The function's versions and environments, and the alarms in ALARM, are read from the demo's own AWS (moto's
Lambda and CloudWatch, the same the bot changes), and the stable version's last hour from the demo's metrics
(the traffic simulator's); the network around it (VPC, subnets, security groups, the ElastiCache cluster
REDIS_URL points at), the secret and the billing alarm are the seed's, held by the in-memory adapter
(canary_demo/fakes/preflight.py): moto has no ElastiCache security groups nor IAM policy simulator, and the
seed's function runs in no real VPC.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from bot.model import PeriodFigures
from bot.ports import AlarmsPort, Clock, MetricsPort, WindowRequest
from bot.preflight import (
    SEED_CHECKS,
    AlarmFact,
    CacheFacts,
    Fact,
    PreflightFacts,
    PreflightRequest,
    SecurityRule,
    parse_cache_url,
)
from canary_demo.fakes.preflight import FakePreflight
from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, REDIS_URL

SECRET: Final = "production/lego-api/redis"
VPC_ID: Final = "vpc-0a1b2c3d4e5f60718"
SUBNETS: Final = {"subnet-0aa11bb22cc33dd44": "10.0.1.0/24", "subnet-0ee55ff66aa77bb88": "10.0.2.0/24"}
SG_FUNCTION: Final = "sg-0lambda0lego0api"
SG_CACHE: Final = "sg-0redis0production"
CACHE_PORT: Final = 6379

# What the demo's policy lists: the seed's whole checklist.
POLICY_CHECKS: Final = SEED_CHECKS
POLICY: Final[dict[str, Any]] = {
    "preflight": list(POLICY_CHECKS),
    "secret": SECRET,
    "cache_url_env": "REDIS_URL",
    "billing_alarm_usd": 50,
}


class DemoPreflight:
    """PreflightPort: the seed's network around the demo's moto Lambda and CloudWatch alarms."""

    def __init__(self, lambda_client: Any, alarms: AlarmsPort, metrics: MetricsPort, clock: Clock) -> None:
        self._lambda = lambda_client
        self._alarms = alarms
        self._metrics = metrics
        self._clock = clock
        self.seed = seed_world()

    def gather(self, request: PreflightRequest, needs: frozenset[Fact]) -> PreflightFacts:
        function = self.seed.functions[LEGO_API]
        function.versions = self._environments()
        function.alias_version = self._lambda.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)[
            "FunctionVersion"
        ]
        if "alarms" in needs:
            self.seed.firing[LEGO_API] = self._alarms.alarms_in_alarm(LEGO_API)
        if "baseline" in needs:
            self.seed.baseline[LEGO_API] = self._baseline(request, function.alias_version)
        return self.seed.gather(request, needs)

    def _baseline(self, request: PreflightRequest, stable: str) -> list[PeriodFigures]:
        """The stable version's last hour of complete periods (as bot/aws/preflight.py asks CloudWatch)."""
        period = timedelta(seconds=request.period_seconds)
        now = self._clock.now()
        end = now - (now - now.replace(hour=0, minute=0, second=0, microsecond=0)) % period
        window = WindowRequest(
            deployment_id=f"preflight:{request.function}",
            function=request.function,
            alias=request.alias,
            canary_version=stable,
            stable_version=stable,
            start=end - timedelta(hours=1),
            end=end,
            period_seconds=request.period_seconds,
        )
        return self._metrics.fetch([window]).get(window.deployment_id, [])

    def _environments(self) -> dict[str, dict[str, str]]:
        """Every version's environment ($LATEST too), as the demo's Lambda holds them now."""
        pages = self._lambda.get_paginator("list_versions_by_function").paginate(FunctionName=LEGO_API)
        return {
            v["Version"]: dict((v.get("Environment") or {}).get("Variables") or {})
            for page in pages
            for v in page["Versions"]
        }


def seed_world() -> FakePreflight:
    """The runbook's production: the function in a VPC, its security group allowed into the Redis cluster's
    on 6379, the secret stored, a $50 billing alarm."""
    fake = FakePreflight()
    fake.add_function(
        LEGO_API,
        alias=PRODUCTION_ALIAS,
        alias_version="1",
        vpc_id=VPC_ID,
        subnets=dict(SUBNETS),
        security_groups=(SG_FUNCTION,),
    )
    fake.add_security_group(SG_FUNCTION)
    fake.add_security_group(
        SG_CACHE,
        ingress=(
            SecurityRule(protocol="tcp", from_port=CACHE_PORT, to_port=CACHE_PORT, groups=(SG_FUNCTION,)),
        ),
    )
    host, port = parse_cache_url(REDIS_URL)
    fake.caches.append(
        CacheFacts(id="production-cache", address=host, port=port, security_groups=(SG_CACHE,))
    )
    fake.secrets.add(SECRET)
    fake.billing_alarms.append(
        AlarmFact(
            name="billing-estimated-charges",
            state="OK",
            namespace="AWS/Billing",
            metric="EstimatedCharges",
            threshold=50.0,
        )
    )
    return fake
