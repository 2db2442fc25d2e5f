"""In-memory PreflightPort: a small world of functions, security groups, caches, secrets and alarms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.model import PeriodFigures
from bot.preflight import (
    AlarmFact,
    CacheFacts,
    Fact,
    PreflightFacts,
    PreflightRequest,
    SecurityGroup,
    SecurityRule,
    actions_to_simulate,
    parse_cache_url,
)


@dataclass
class FakeFunction:
    alias: str | None  # its alias name (None: no alias)
    alias_version: str
    versions: dict[str, dict[str, str]]  # version ("$LATEST" too) -> environment
    vpc_id: str | None = None
    subnets: dict[str, str] = field(default_factory=dict)  # subnet id -> CIDR
    security_groups: tuple[str, ...] = ()
    no_vpc: set[str] = field(default_factory=set)  # versions published before the VPC was configured


@dataclass
class FakePreflight:
    """PreflightPort in memory. Open for tests: set up the world, or make a fact unavailable (`refuse`)."""

    functions: dict[str, FakeFunction] = field(default_factory=dict)
    security_groups: dict[str, SecurityGroup] = field(default_factory=dict)
    caches: list[CacheFacts] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    billing_alarms: list[AlarmFact] = field(default_factory=list)
    firing: dict[str, list[str]] = field(default_factory=dict)  # function -> alarm names in ALARM
    denied: set[str] = field(default_factory=set)  # IAM actions the principal may not call
    baseline: dict[str, list[PeriodFigures]] = field(default_factory=dict)  # function -> stable's periods
    refuse: dict[str, str] = field(default_factory=dict)  # fact -> the reason AWS would give
    calls: list[frozenset[Fact]] = field(default_factory=list)

    # ------------------------------------------------------------ set-up helpers
    def add_function(
        self,
        name: str,
        *,
        alias: str = "production",
        alias_version: str = "1",
        env: dict[str, str] | None = None,
        versions: tuple[str, ...] = ("1", "2"),
        vpc_id: str | None = None,
        subnets: dict[str, str] | None = None,
        security_groups: tuple[str, ...] = (),
    ) -> None:
        environment = dict(env or {})
        self.functions[name] = FakeFunction(
            alias=alias,
            alias_version=alias_version,
            versions={v: dict(environment) for v in (*versions, "$LATEST")},
            vpc_id=vpc_id,
            subnets=dict(subnets or {}),
            security_groups=security_groups,
        )

    def add_security_group(
        self,
        group_id: str,
        *,
        ingress: tuple[SecurityRule, ...] = (),
        egress: tuple[SecurityRule, ...] | None = None,
    ) -> None:
        out = (SecurityRule(protocol="-1", cidrs=("0.0.0.0/0",)),) if egress is None else egress
        self.security_groups[group_id] = SecurityGroup(id=group_id, ingress=ingress, egress=out)

    # ------------------------------------------------------------ PreflightPort
    def gather(self, request: PreflightRequest, needs: frozenset[Fact]) -> PreflightFacts:
        self.calls.append(needs)
        facts: dict[str, Any] = {"request": request}
        unknown = {fact: why for fact, why in self.refuse.items() if fact in needs or fact == "function"}
        fn = self.functions.get(request.function)
        if "function" not in unknown:
            facts["function_exists"] = fn is not None
            if fn is not None:
                facts["alias_version"] = fn.alias_version if fn.alias == request.alias else None
                if request.version is not None:
                    facts["version_exists"] = request.version in fn.versions
        if fn is None:
            return PreflightFacts(**facts, unknown=unknown)
        env = fn.versions.get(request.qualifier)
        if needs & {"configuration", "vpc", "cache"} and env is not None and "configuration" not in unknown:
            in_vpc = request.qualifier not in fn.no_vpc
            facts.update(
                environment=dict(env),
                vpc_id=fn.vpc_id if in_vpc else None,
                subnet_ids=tuple(fn.subnets) if in_vpc else (),
                subnet_cidrs=tuple(fn.subnets.values()) if in_vpc and "vpc" in needs else (),
                function_security_groups=fn.security_groups if in_vpc else (),
            )
        if "cache" in needs and "cache" not in unknown and env is not None:
            facts.update(self._cache(request, env, fn))
        if "secret" in needs and request.settings.secret and "secret" not in unknown:
            facts["secret_exists"] = request.settings.secret in self.secrets
        if "billing" in needs and "billing" not in unknown:
            facts["billing_alarms"] = tuple(self.billing_alarms)
        if "alarms" in needs and "alarms" not in unknown:
            facts["firing_alarms"] = tuple(sorted(self.firing.get(request.function, [])))
        if "permissions" in needs and "permissions" not in unknown:
            facts["permissions"] = {a: a not in self.denied for a in actions_to_simulate(request.settings)}
        if "baseline" in needs and "baseline" not in unknown:
            facts["baseline"] = tuple(self.baseline.get(request.function, []))
        return PreflightFacts(**facts, unknown=unknown)

    def _cache(self, request: PreflightRequest, env: dict[str, str], fn: FakeFunction) -> dict[str, Any]:
        target = request.environment_after(env)
        url = target.get(request.settings.cache_url_env)
        if url is None:
            return {}
        try:
            host, _port = parse_cache_url(url)
        except ValueError:
            return {}
        cache = next((c for c in self.caches if c.address == host.lower()), None)
        own = () if request.qualifier in fn.no_vpc else fn.security_groups
        wanted = set(own) | set(cache.security_groups if cache else ())
        groups = {g: self.security_groups[g] for g in sorted(wanted) if g in self.security_groups}
        return {"cache": cache, "security_groups": groups}
