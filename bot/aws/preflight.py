"""PreflightPort on boto3: the read-only describe calls behind the pre-deployment checks.

Each fact is gathered on its own: a call AWS refuses (access denied, throttled after retries, an API the
account or endpoint lacks) leaves that fact unknown with the reason, so its checks read ⚠️ and the others still
run. Calls: lambda:GetFunctionConfiguration / GetAlias, ec2:DescribeSecurityGroups / DescribeSubnets,
elasticache:DescribeReplicationGroups / DescribeCacheClusters, secretsmanager:DescribeSecret,
cloudwatch:DescribeAlarms (billing alarms live in us-east-1), sts:GetCallerIdentity and
iam:SimulatePrincipalPolicy, and the metrics port for the stable version's last hour.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.ports import AlarmsPort, Clock, MetricsPort, WindowRequest
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

log = logging.getLogger(__name__)

BASELINE = timedelta(hours=1)
BILLING_REGION = "us-east-1"  # AWS/Billing metrics exist only there
_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")


class _Unknown(Exception):
    """One fact could not be gathered; str() says why."""


@contextmanager
def _asking(what: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise _Unknown(f"{what}: {error.get('Code')}: {error.get('Message')}") from exc
    except BotoCoreError as exc:
        raise _Unknown(f"{what}: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class AwsPreflight:
    def __init__(
        self,
        *,
        lambda_client: Any,
        ec2: Any,
        elasticache: Any,
        secretsmanager: Any,
        billing_cloudwatch: Any,
        iam: Any,
        sts: Any,
        clock: Clock,
        alarms: AlarmsPort | None = None,
        metrics: MetricsPort | None = None,
    ) -> None:
        self._lambda = lambda_client
        self._ec2 = ec2
        self._elasticache = elasticache
        self._secrets = secretsmanager
        self._billing = billing_cloudwatch
        self._iam = iam
        self._sts = sts
        self._clock = clock
        self._alarms = alarms
        self._metrics = metrics

    def gather(self, request: PreflightRequest, needs: frozenset[Fact]) -> PreflightFacts:
        facts: dict[str, Any] = {"request": request}
        unknown: dict[str, str] = {}

        def step(fact: Fact, work: Callable[[], dict[str, Any]]) -> None:
            try:
                facts.update(work())
            except _Unknown as exc:
                unknown[fact] = str(exc)

        step("function", lambda: self._function(request))
        if facts.get("function_exists") is False:
            return PreflightFacts(**facts, unknown=unknown)
        config: dict[str, Any] = {}
        if needs & {"configuration", "vpc", "cache"}:
            try:
                config = self._configuration(request)
            except _Unknown as exc:
                for fact in ("configuration", "vpc"):
                    unknown[fact] = str(exc)
        if config:
            env = (config.get("Environment") or {}).get("Variables") or {}
            vpc = config.get("VpcConfig") or {}
            facts.update(
                environment=dict(env),
                vpc_id=vpc.get("VpcId") or None,
                subnet_ids=tuple(vpc.get("SubnetIds") or ()),
                function_security_groups=tuple(vpc.get("SecurityGroupIds") or ()),
            )
            if "vpc" in needs and facts["subnet_ids"]:
                step("vpc", lambda: {"subnet_cidrs": self._subnet_cidrs(facts["subnet_ids"])})
        if "cache" in needs and config:
            step("cache", lambda: self._cache(request, facts))
        if "secret" in needs and request.settings.secret:
            step("secret", lambda: {"secret_exists": self._secret_exists(request.settings.secret or "")})
        if "billing" in needs:
            step("billing", lambda: {"billing_alarms": self._billing_alarms()})
        if "alarms" in needs:
            step("alarms", lambda: {"firing_alarms": self._firing(request.function)})
        if "permissions" in needs:
            step("permissions", lambda: {"permissions": self._permissions(request)})
        if "baseline" in needs:
            step("baseline", lambda: {"baseline": self._baseline(request, facts.get("alias_version"))})
        return PreflightFacts(**facts, unknown=unknown)

    # ------------------------------------------------------------ facts
    def _function(self, request: PreflightRequest) -> dict[str, Any]:
        try:
            with _asking("GetAlias"):
                alias = self._lambda.get_alias(FunctionName=request.function, Name=request.alias)
        except _Unknown as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ClientError) and _code(cause) == "ResourceNotFoundException"):
                raise
            return self._function_without_alias(request)
        out: dict[str, Any] = {"function_exists": True, "alias_version": alias["FunctionVersion"]}
        if request.version is not None:
            out["version_exists"] = self._version_exists(request)
        return out

    def _function_without_alias(self, request: PreflightRequest) -> dict[str, Any]:
        try:
            with _asking("GetFunctionConfiguration"):
                self._lambda.get_function_configuration(FunctionName=request.function)
        except _Unknown as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) == "ResourceNotFoundException":
                return {"function_exists": False}
            raise
        return {"function_exists": True, "alias_version": None}

    def _version_exists(self, request: PreflightRequest) -> bool:
        try:
            with _asking("GetFunctionConfiguration"):
                self._lambda.get_function_configuration(
                    FunctionName=request.function, Qualifier=request.qualifier
                )
        except _Unknown as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) == "ResourceNotFoundException":
                return False
            raise
        return True

    def _configuration(self, request: PreflightRequest) -> dict[str, Any]:
        with _asking(f"GetFunctionConfiguration {request.qualifier}"):
            answer: dict[str, Any] = self._lambda.get_function_configuration(
                FunctionName=request.function, Qualifier=request.qualifier
            )
        return answer

    def _subnet_cidrs(self, subnet_ids: Iterable[str]) -> tuple[str, ...]:
        with _asking("DescribeSubnets"):
            subnets = self._ec2.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
        return tuple(s["CidrBlock"] for s in subnets if s.get("CidrBlock"))

    def _cache(self, request: PreflightRequest, facts: dict[str, Any]) -> dict[str, Any]:
        env = request.environment_after(dict(facts.get("environment") or {}))
        url = env.get(request.settings.cache_url_env)
        if url is None:
            return {}
        try:
            host, port = parse_cache_url(url)
        except ValueError:
            return {}  # the redis_url check says why
        cache = self._find_cache(host, port)
        out: dict[str, Any] = {"cache": cache}
        groups = set(facts.get("function_security_groups") or ())
        if cache is not None:
            groups |= set(cache.security_groups)
        if groups:
            out["security_groups"] = self._security_groups(sorted(groups))
        return out

    def _find_cache(self, host: str, port: int) -> CacheFacts | None:
        """The replication group or cluster with `host` as an endpoint, with its security groups."""
        host = host.lower()
        with _asking("DescribeReplicationGroups"):
            pages = self._elasticache.get_paginator("describe_replication_groups").paginate()
            for page in pages:
                for group in page.get("ReplicationGroups", []):
                    if host in _replication_group_hosts(group):
                        members = list(group.get("MemberClusters") or [])
                        return CacheFacts(
                            id=group["ReplicationGroupId"],
                            address=host,
                            port=port,
                            security_groups=self._cluster_groups(members[:1]),
                        )
        with _asking("DescribeCacheClusters"):
            pages = self._elasticache.get_paginator("describe_cache_clusters").paginate(
                ShowCacheNodeInfo=True
            )
            for page in pages:
                for cluster in page.get("CacheClusters", []):
                    if host in _cluster_hosts(cluster):
                        return CacheFacts(
                            id=cluster["CacheClusterId"],
                            address=host,
                            port=port,
                            security_groups=_group_ids(cluster),
                        )
        return None

    def _cluster_groups(self, cluster_ids: list[str]) -> tuple[str, ...]:
        groups: list[str] = []
        for cluster_id in cluster_ids:
            with _asking(f"DescribeCacheClusters {cluster_id}"):
                clusters = self._elasticache.describe_cache_clusters(CacheClusterId=cluster_id)[
                    "CacheClusters"
                ]
            for cluster in clusters:
                groups += _group_ids(cluster)
        return tuple(dict.fromkeys(groups))

    def _security_groups(self, group_ids: list[str]) -> dict[str, SecurityGroup]:
        with _asking("DescribeSecurityGroups"):
            answer = self._ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]
        return {
            g["GroupId"]: SecurityGroup(
                id=g["GroupId"],
                ingress=tuple(_rule(r) for r in g.get("IpPermissions") or ()),
                egress=tuple(_rule(r) for r in g.get("IpPermissionsEgress") or ()),
            )
            for g in answer
        }

    def _secret_exists(self, name: str) -> bool:
        try:
            with _asking(f"DescribeSecret {name}"):
                self._secrets.describe_secret(SecretId=name)
        except _Unknown as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) == "ResourceNotFoundException":
                return False
            raise
        return True

    def _billing_alarms(self) -> tuple[AlarmFact, ...]:
        found: list[AlarmFact] = []
        with _asking(f"DescribeAlarms (billing, {BILLING_REGION})"):
            pages = self._billing.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
            for page in pages:
                for alarm in page.get("MetricAlarms", []):
                    found.append(
                        AlarmFact(
                            name=alarm["AlarmName"],
                            state=alarm.get("StateValue", ""),
                            namespace=alarm.get("Namespace"),
                            metric=alarm.get("MetricName"),
                            threshold=alarm.get("Threshold"),
                        )
                    )
        return tuple(found)

    def _firing(self, function: str) -> tuple[str, ...]:
        if self._alarms is None:
            raise _Unknown("no CloudWatch alarms adapter configured")
        try:
            return tuple(self._alarms.alarms_in_alarm(function))
        except Exception as exc:
            raise _Unknown(f"DescribeAlarms: {exc}") from exc

    def _permissions(self, request: PreflightRequest) -> dict[str, bool]:
        with _asking("GetCallerIdentity"):
            arn = self._sts.get_caller_identity()["Arn"]
        principal = principal_arn(arn)
        actions = list(actions_to_simulate(request.settings))
        allowed: dict[str, bool] = {}
        with _asking(f"SimulatePrincipalPolicy for {principal}"):
            pages = self._iam.get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=principal, ActionNames=actions
            )
            for page in pages:
                for result in page.get("EvaluationResults", []):
                    allowed[result["EvalActionName"]] = result.get("EvalDecision") == "allowed"
        return allowed

    def _baseline(self, request: PreflightRequest, stable: str | None) -> tuple[Any, ...]:
        if self._metrics is None:
            raise _Unknown("no metrics adapter configured")
        if stable is None:
            raise _Unknown("the alias does not exist: no stable version")
        period = timedelta(seconds=request.period_seconds)
        now = self._clock.now()
        end = now - (now - now.replace(hour=0, minute=0, second=0, microsecond=0)) % period
        window = WindowRequest(
            deployment_id=f"preflight:{request.function}",
            function=request.function,
            alias=request.alias,
            canary_version=stable,
            stable_version=stable,
            start=end - BASELINE,
            end=end,
            period_seconds=request.period_seconds,
        )
        try:
            return tuple(self._metrics.fetch([window]).get(window.deployment_id, []))
        except Exception as exc:
            raise _Unknown(f"metrics: {exc}") from exc


def principal_arn(caller_arn: str) -> str:
    """The IAM principal to simulate: an assumed role's role ARN (without its path, which STS does not say)."""
    match = _ASSUMED_ROLE.match(caller_arn)
    if match:
        partition, account, role = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    return caller_arn


def _rule(raw: dict[str, Any]) -> SecurityRule:
    return SecurityRule(
        protocol=str(raw.get("IpProtocol", "-1")),
        from_port=raw.get("FromPort"),
        to_port=raw.get("ToPort"),
        groups=tuple(p["GroupId"] for p in raw.get("UserIdGroupPairs") or () if p.get("GroupId")),
        cidrs=tuple(r["CidrIp"] for r in raw.get("IpRanges") or () if r.get("CidrIp")),
    )


def _group_ids(cluster: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        g["SecurityGroupId"] for g in cluster.get("SecurityGroups") or () if g.get("SecurityGroupId")
    )


def _replication_group_hosts(group: dict[str, Any]) -> set[str]:
    hosts = {str((group.get("ConfigurationEndpoint") or {}).get("Address", "")).lower()}
    for node_group in group.get("NodeGroups") or ():
        for key in ("PrimaryEndpoint", "ReaderEndpoint"):
            hosts.add(str((node_group.get(key) or {}).get("Address", "")).lower())
        for member in node_group.get("NodeGroupMembers") or ():
            hosts.add(str((member.get("ReadEndpoint") or {}).get("Address", "")).lower())
    hosts.discard("")
    return hosts


def _cluster_hosts(cluster: dict[str, Any]) -> set[str]:
    hosts = {str((cluster.get("ConfigurationEndpoint") or {}).get("Address", "")).lower()}
    for node in cluster.get("CacheNodes") or ():
        hosts.add(str((node.get("Endpoint") or {}).get("Address", "")).lower())
    hosts.discard("")
    return hosts
