"""The pre-deployment checklist as named checks: facts in, results out. Pure: no boto3, no Slack, no clock.

The seed runbook's checklist (function and alias exist, REDIS_URL set and parseable, the function in a VPC, a
security-group path to the cache, the secret in Secrets Manager, a billing alarm, no alarm firing, the canary's
alarms and dashboard creatable, a healthy baseline) is a registry of checks. Each check names the facts it needs
(`needs`); a fact-gathering adapter (bot.ports.PreflightPort) fetches only those, and `evaluate` turns them
into one ✅ / 🔴 / ⚠️ per check with its evidence. A policy lists the checks per function
(`preflight: [vpc, redis_url, …]`); `function` always runs first.

Adding a check: write `def my_check(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult`, and
`register(Check("my_check", "What it checks", needs=frozenset({...}), evaluate=my_check))`.
"""

from __future__ import annotations

import ipaddress
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, computed_field

from bot.model import PeriodFigures, Thresholds

CheckStatus = Literal["pass", "fail", "warn"]
ICON: dict[CheckStatus, str] = {"pass": "✅", "fail": "🔴", "warn": "⚠️"}
LATEST = "$LATEST"

# What a gatherer can be asked for. A check names the facts it reads; only those are fetched.
Fact = Literal[
    "function", "configuration", "vpc", "cache", "secret", "billing", "alarms", "permissions", "baseline"
]


# Facts read from the target version itself.
_VERSION_FACTS: frozenset[Fact] = frozenset({"configuration", "vpc"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class PreflightSettings(_Frozen):
    """What a function's policy says the checks should expect."""

    cache_url_env: str = "REDIS_URL"  # the environment variable naming the cache
    secret: str | None = None  # the Secrets Manager secret the runbook expects
    billing_alarm_usd: float = 50.0  # the seed: "$50/month threshold"
    thresholds: Thresholds = Thresholds()
    log_group: str | None = None


class PreflightRequest(_Frozen):
    """What to check: a function's target version (None: $LATEST, about to be published with env_changes)."""

    function: str
    alias: str
    version: str | None = None
    env_changes: dict[str, str | None] = Field(default_factory=dict)  # --publish: KEY -> value, None = unset
    checks: tuple[str, ...] = ()
    settings: PreflightSettings = PreflightSettings()
    period_seconds: int = 300  # the baseline's periods

    @property
    def qualifier(self) -> str:
        return self.version or LATEST

    @property
    def target(self) -> str:
        """'v3', or '$LATEST' (to be published)."""
        return f"v{self.version}" if self.version else LATEST

    def environment_after(self, env: dict[str, str]) -> dict[str, str]:
        """`env` with the --publish changes applied (what the version to be published will carry)."""
        after = dict(env)
        for key, value in self.env_changes.items():
            if value is None:
                after.pop(key, None)
            else:
                after[key] = value
        return after


class SecurityRule(_Frozen):
    """One ingress or egress permission of a security group, as EC2 describes it."""

    protocol: str  # "tcp", "udp", "-1" (all)
    from_port: int | None = None
    to_port: int | None = None
    groups: tuple[str, ...] = ()  # other security groups allowed
    cidrs: tuple[str, ...] = ()  # IPv4 ranges allowed

    def covers(self, port: int) -> bool:
        if self.protocol == "-1":
            return True
        if self.protocol not in ("tcp", "6"):
            return False
        if self.from_port is None or self.to_port is None:
            return True
        return self.from_port <= port <= self.to_port


class SecurityGroup(_Frozen):
    id: str
    ingress: tuple[SecurityRule, ...] = ()
    egress: tuple[SecurityRule, ...] = ()


class CacheFacts(_Frozen):
    """The cache the URL points at, as ElastiCache describes it (None fields: not known)."""

    id: str
    address: str
    port: int
    security_groups: tuple[str, ...] = ()


class AlarmFact(_Frozen):
    name: str
    state: str
    namespace: str | None = None
    metric: str | None = None
    threshold: float | None = None


class PreflightFacts(_Frozen):
    """Everything gathered for one request. A fact that could not be gathered is None with a reason in
    `unknown` (then its checks are ⚠️, never ✅)."""

    request: PreflightRequest
    function_exists: bool | None = None
    alias_version: str | None = None  # None: the alias does not exist (when function_exists)
    version_exists: bool | None = None
    environment: dict[str, str] | None = None  # of the target version, before env_changes
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    subnet_cidrs: tuple[str, ...] = ()
    function_security_groups: tuple[str, ...] = ()
    security_groups: dict[str, SecurityGroup] = Field(default_factory=dict)  # by id: function's and cache's
    cache: CacheFacts | None = None
    secret_exists: bool | None = None
    billing_alarms: tuple[AlarmFact, ...] | None = None
    firing_alarms: tuple[str, ...] | None = None
    permissions: dict[str, bool] | None = None  # action -> allowed
    baseline: tuple[PeriodFigures, ...] | None = None  # the stable version, last hour's complete periods
    unknown: dict[str, str] = Field(default_factory=dict)  # fact -> why it could not be gathered

    @property
    def target_environment(self) -> dict[str, str] | None:
        if self.environment is None:
            return None
        return self.request.environment_after(self.environment)


class CheckResult(_Frozen):
    name: str
    title: str
    status: CheckStatus
    evidence: str

    @property
    def icon(self) -> str:
        return ICON[self.status]

    def line(self) -> str:
        return f"{self.icon} {self.title}: {self.evidence}"


class PreflightReport(_Frozen):
    function: str
    alias: str
    version: str  # the target version, or $LATEST
    results: tuple[CheckResult, ...]
    overridden_by: str | None = None  # the approver who started despite a 🔴
    override_reason: str | None = None

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status == "fail")

    @property
    def warned(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status == "warn")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """No 🔴 (⚠️ does not block)."""
        return not self.failed

    def summary(self) -> str:
        passed = sum(r.status == "pass" for r in self.results)
        parts = [f"{passed} ✅"]
        if self.warned:
            parts.append(f"{len(self.warned)} ⚠️")
        if self.failed:
            parts.append(f"{len(self.failed)} 🔴")
        return f"preflight of {self.function}:{self.alias} {self._target}: " + " · ".join(parts)

    @property
    def _target(self) -> str:
        return self.version if self.version == LATEST else f"v{self.version}"


Evaluate = Callable[[PreflightFacts, PreflightSettings], CheckResult]


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    needs: frozenset[Fact]
    evaluate: Evaluate


CHECKS: dict[str, Check] = {}


def register(check: Check) -> Check:
    """Add (or replace) a named check; a policy can then list it."""
    CHECKS[check.name] = check
    return check


def unknown_checks(names: Sequence[str]) -> list[str]:
    return [n for n in names if n not in CHECKS]


def checks_for(names: Sequence[str]) -> list[Check]:
    """`function` first, then the named ones in the policy's order, each once."""
    ordered = ["function", *[n for n in names if n != "function"]]
    missing = unknown_checks(ordered)
    if missing:
        raise ValueError(
            f"unknown preflight check(s) {', '.join(missing)}; known: {', '.join(sorted(CHECKS))}"
        )
    return [CHECKS[n] for n in dict.fromkeys(ordered)]


def facts_needed(names: Sequence[str]) -> frozenset[Fact]:
    needed: set[Fact] = set()
    for check in checks_for(names):
        needed |= check.needs
    return frozenset(needed)


def evaluate(facts: PreflightFacts) -> PreflightReport:
    """Every check of the request against the facts. A check whose function is missing is skipped as 🔴."""
    request = facts.request
    results: list[CheckResult] = []
    for check in checks_for(request.checks):
        if check.name != "function" and facts.function_exists is False:
            results.append(_result(check, "fail", "skipped: the function does not exist"))
            continue
        if facts.version_exists is False and check.needs & _VERSION_FACTS:
            # Nothing was read about a version that does not exist: say so, never guess its configuration.
            results.append(_result(check, "warn", f"skipped: version {request.qualifier} does not exist"))
            continue
        results.append(check.evaluate(facts, request.settings))
    return PreflightReport(
        function=request.function, alias=request.alias, version=request.qualifier, results=tuple(results)
    )


def _result(check: Check | str, status: CheckStatus, evidence: str) -> CheckResult:
    c = CHECKS[check] if isinstance(check, str) else check
    return CheckResult(name=c.name, title=c.title, status=status, evidence=evidence)


def _unknown(name: str, facts: PreflightFacts, *fact_names: str) -> CheckResult | None:
    for fact in fact_names:
        if fact in facts.unknown:
            return _result(name, "warn", f"could not check: {facts.unknown[fact]}")
    return None


# ---------------------------------------------------------------- the seed's checks
def check_function(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    r = facts.request
    if (u := _unknown("function", facts, "function")) is not None:
        return u
    if not facts.function_exists:
        return _result("function", "fail", f"function {r.function} does not exist")
    if facts.alias_version is None:
        return _result("function", "fail", f"alias {r.alias} of {r.function} does not exist")
    if r.version is not None and facts.version_exists is False:
        return _result("function", "fail", f"version {r.version} of {r.function} does not exist")
    target = f"v{r.version}" if r.version else f"{LATEST} (to be published)"
    return _result(
        "function", "pass", f"{r.function}:{r.alias} routes v{facts.alias_version}; target {target} exists"
    )


def parse_cache_url(url: str) -> tuple[str, int]:
    """(host, port) of a redis:// or rediss:// URL; ValueError saying what is wrong otherwise."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from exc
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"scheme {parts.scheme or '(none)'!r} is not redis:// or rediss://")
    if not parts.hostname:
        raise ValueError("no host")
    if parts.path not in ("", "/") and not parts.path.lstrip("/").isdigit():
        raise ValueError(f"database {parts.path.lstrip('/')!r} is not a number")
    return parts.hostname, port or 6379


def _cache_endpoint(facts: PreflightFacts, settings: PreflightSettings) -> tuple[str, int] | str:
    env = facts.target_environment or {}
    url = env.get(settings.cache_url_env)
    if url is None:
        return f"{settings.cache_url_env} is not set on {facts.request.target}"
    try:
        return parse_cache_url(url)
    except ValueError as exc:
        return f"{settings.cache_url_env} is not a Redis URL: {exc}"


def check_redis_url(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    if (u := _unknown("redis_url", facts, "configuration")) is not None:
        return u
    endpoint = _cache_endpoint(facts, settings)
    if isinstance(endpoint, str):
        return _result("redis_url", "fail", endpoint)
    host, port = endpoint
    where = "after --publish's changes" if facts.request.env_changes else f"on {facts.request.target}"
    return _result("redis_url", "pass", f"{settings.cache_url_env} → {host}:{port} {where}")


def check_vpc(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    if (u := _unknown("vpc", facts, "vpc")) is not None:
        return u
    if not facts.vpc_id or not facts.subnet_ids:
        return _result(
            "vpc",
            "fail",
            f"{facts.request.target} runs outside any VPC: it cannot reach an ElastiCache node",
        )
    groups = ", ".join(facts.function_security_groups) or "none"
    return _result(
        "vpc", "pass", f"in {facts.vpc_id}, {len(facts.subnet_ids)} subnet(s), security groups {groups}"
    )


def check_cache_reachable(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    if (u := _unknown("cache_reachable", facts, "configuration", "vpc")) is not None:
        return u
    endpoint = _cache_endpoint(facts, settings)
    if isinstance(endpoint, str):
        return _result("cache_reachable", "fail", endpoint)
    host, port = endpoint
    if not facts.function_security_groups:
        return _result("cache_reachable", "fail", "the function has no security group (not in a VPC)")
    if (u := _unknown("cache_reachable", facts, "cache")) is not None:
        return u
    if facts.cache is None:
        return _result(
            "cache_reachable", "warn", f"no ElastiCache cluster or replication group has the endpoint {host}"
        )
    cache = facts.cache
    if not cache.security_groups:
        return _result("cache_reachable", "warn", f"{cache.id}: its security groups are not known")
    own = set(facts.function_security_groups)
    ingress = _allowed(
        [facts.security_groups.get(g) for g in cache.security_groups],
        own,
        facts.subnet_cidrs,
        port,
        "ingress",
    )
    if ingress is None:
        return _result(
            "cache_reachable",
            "fail",
            f"no inbound rule of {', '.join(cache.security_groups)} ({cache.id}) lets "
            f"{', '.join(sorted(own))} reach port {port}",
        )
    egress = _allowed(
        [facts.security_groups.get(g) for g in own],
        set(cache.security_groups),
        (),
        port,
        "egress",
    )
    if egress is None:
        return _result(
            "cache_reachable", "fail", f"no outbound rule of {', '.join(sorted(own))} allows port {port}"
        )
    return _result("cache_reachable", "pass", f"{cache.id} {host}:{port}: {ingress}")


def _allowed(
    groups: Sequence[SecurityGroup | None],
    peers: set[str],
    peer_cidrs: Sequence[str],
    port: int,
    direction: Literal["ingress", "egress"],
) -> str | None:
    """The first rule of `groups` letting `peers` (by group or by the subnets' ranges) through on port."""
    for group in groups:
        if group is None:
            continue
        for rule in group.ingress if direction == "ingress" else group.egress:
            if not rule.covers(port):
                continue
            if peers & set(rule.groups):
                return f"{group.id} allows {sorted(peers & set(rule.groups))[0]} on port {port}"
            for cidr in rule.cidrs:
                network = ipaddress.ip_network(cidr, strict=False)
                if network.prefixlen == 0:
                    return f"{group.id} allows {cidr} on port {port}"
                if peer_cidrs and all(_inside(s, network) for s in peer_cidrs):
                    return f"{group.id} allows {cidr} (the function's subnets) on port {port}"
    return None


def _inside(cidr: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    subnet = ipaddress.ip_network(cidr, strict=False)
    if subnet.version != network.version:
        return False
    return subnet.subnet_of(network)  # type: ignore[arg-type]


def check_secret(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    if settings.secret is None:
        return _result("secret", "warn", "no `secret` named in the policy: nothing to look for")
    if (u := _unknown("secret", facts, "secret")) is not None:
        return u
    if not facts.secret_exists:
        return _result("secret", "fail", f"secret {settings.secret} is not in Secrets Manager")
    return _result("secret", "pass", f"secret {settings.secret} exists")


def check_billing_alarm(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    if (u := _unknown("billing_alarm", facts, "billing")) is not None:
        return u
    limit = settings.billing_alarm_usd
    alarms = [
        a
        for a in facts.billing_alarms or ()
        if a.namespace == "AWS/Billing" and a.metric == "EstimatedCharges" and a.threshold is not None
    ]
    if not alarms:
        return _result(
            "billing_alarm", "fail", f"no billing alarm (AWS/Billing EstimatedCharges, ≤ ${limit:g})"
        )
    best = min(alarms, key=lambda a: a.threshold or 0.0)
    assert best.threshold is not None
    if best.threshold > limit:
        return _result(
            "billing_alarm",
            "warn",
            f"{best.name} alarms at ${best.threshold:g}, above the policy's ${limit:g}",
        )
    return _result(
        "billing_alarm", "pass", f"{best.name} alarms at ${best.threshold:g} (policy ≤ ${limit:g})"
    )


def check_alarms_quiet(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    if (u := _unknown("alarms_quiet", facts, "alarms")) is not None:
        return u
    firing = facts.firing_alarms or ()
    if firing:
        return _result("alarms_quiet", "fail", f"in ALARM: {', '.join(firing)}")
    return _result("alarms_quiet", "pass", f"no alarm of {facts.request.function} is in ALARM")


def check_permissions(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    if (u := _unknown("permissions", facts, "permissions")) is not None:
        return u
    allowed = facts.permissions or {}
    denied = sorted(a for a, ok in allowed.items() if not ok)
    if denied:
        return _result("permissions", "fail", f"denied: {', '.join(denied)}")
    return _result("permissions", "pass", f"allowed: {', '.join(sorted(allowed))}")


def check_baseline_healthy(facts: PreflightFacts, settings: PreflightSettings) -> CheckResult:
    if (u := _unknown("baseline_healthy", facts, "baseline")) is not None:
        return u
    periods = facts.baseline or ()
    invocations = sum(p.stable.invocations for p in periods)
    if not invocations:
        return _result(
            "baseline_healthy", "warn", "no stable traffic in the last hour: nothing to compare with"
        )
    t = settings.thresholds
    errors = sum(p.stable.errors for p in periods)
    rate = errors / invocations
    p95s = [p.stable.p95_ms for p in periods if p.stable.p95_ms is not None]
    p95 = statistics.median(p95s) if p95s else None
    problems = []
    if t.error_rate is not None and rate > t.error_rate:
        problems.append(f"error rate {rate:.3%} > {t.error_rate:.3%}")
    if t.p95_ms is not None and p95 is not None and p95 > t.p95_ms:
        problems.append(f"p95 {p95:.0f} ms > {t.p95_ms:g} ms")
    seen = f"error rate {rate:.3%} over {invocations:,.0f} invocations" + (
        f", median p95 {p95:.0f} ms" if p95 is not None else ", p95 unknown"
    )
    if problems:
        return _result(
            "baseline_healthy",
            "fail",
            f"stable already fails: {'; '.join(problems)} (a canary judged against it means nothing)",
        )
    return _result("baseline_healthy", "pass", f"stable over the last hour: {seen}")


for _check in (
    Check("function", "Function and alias", frozenset({"function"}), check_function),
    Check("redis_url", "Cache URL", frozenset({"configuration"}), check_redis_url),
    Check("vpc", "Runs in a VPC", frozenset({"vpc"}), check_vpc),
    Check(
        "cache_reachable",
        "Security groups reach the cache",
        frozenset({"configuration", "vpc", "cache"}),
        check_cache_reachable,
    ),
    Check("secret", "Secret in Secrets Manager", frozenset({"secret"}), check_secret),
    Check("billing_alarm", "Billing alarm", frozenset({"billing"}), check_billing_alarm),
    Check("alarms_quiet", "No alarm firing", frozenset({"alarms"}), check_alarms_quiet),
    Check(
        "permissions",
        "Canary alarms and dashboard can be created",
        frozenset({"permissions"}),
        check_permissions,
    ),
    Check("baseline_healthy", "Stable baseline healthy", frozenset({"baseline"}), check_baseline_healthy),
):
    register(_check)

# The seed's checklist, in its order (for a policy that wants all of it: `preflight: [...]`).
SEED_CHECKS: tuple[str, ...] = (
    "redis_url",
    "vpc",
    "cache_reachable",
    "secret",
    "billing_alarm",
    "alarms_quiet",
    "permissions",
    "baseline_healthy",
)

# The actions a canary needs to create its alarms, dashboard and cache metric filters.
CANARY_ACTIONS: tuple[str, ...] = (
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:TagResource",
    "cloudwatch:DeleteAlarms",
    "cloudwatch:PutDashboard",
)
LOG_ACTIONS: tuple[str, ...] = ("logs:PutMetricFilter", "logs:DeleteMetricFilter")


def actions_to_simulate(settings: PreflightSettings) -> tuple[str, ...]:
    return CANARY_ACTIONS + (LOG_ACTIONS if settings.log_group else ())


__all__ = [
    "CHECKS",
    "ICON",
    "LATEST",
    "SEED_CHECKS",
    "AlarmFact",
    "CacheFacts",
    "Check",
    "CheckResult",
    "CheckStatus",
    "Fact",
    "PreflightFacts",
    "PreflightReport",
    "PreflightRequest",
    "PreflightSettings",
    "SecurityGroup",
    "SecurityRule",
    "actions_to_simulate",
    "checks_for",
    "evaluate",
    "facts_needed",
    "parse_cache_url",
    "register",
    "unknown_checks",
]
