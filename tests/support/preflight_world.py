"""The seed's pre-deployment world twice: in moto (plus botocore Stubber where moto falls short) and in the
in-memory fake, with the same ids, so the contract test can ask both the same question.

moto 5.2.5 fakes EC2 security groups and subnets, Lambda's VpcConfig, Secrets Manager, CloudWatch alarms and
STS faithfully. Its DescribeCacheClusters leaves out SecurityGroups and CacheNodes, and it does not implement
iam:SimulatePrincipalPolicy: those two clients are botocore Stubbers with realistic answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.stub import ANY, Stubber

from bot.aws.alarms import CloudWatchAlarms
from bot.aws.clients import aws_client, cloudwatch_client, lambda_client
from bot.aws.preflight import AwsPreflight
from bot.clock import ManualClock
from bot.model import PeriodFigures, VersionFigures
from bot.ports import WindowRequest
from bot.preflight import (
    SEED_CHECKS,
    AlarmFact,
    CacheFacts,
    PreflightRequest,
    PreflightSettings,
    SecurityGroup,
    SecurityRule,
    actions_to_simulate,
)
from canary_demo.fakes.preflight import FakePreflight
from canary_demo.seed import BASE_ENV, LEGO_API, PRODUCTION_ALIAS, publish, seed_lego_api

REGION = "us-east-1"
SECRET = "production/lego-api/redis"
CACHE_ID = "production-cache"
CACHE_HOST = "master.production-cache.abc123.use1.cache.amazonaws.com"
CACHE_URL = f"redis://{CACHE_HOST}:6379"
SUBNET_CIDR = "10.0.1.0/24"
NOW = datetime(2026, 2, 8, 15, 2, tzinfo=UTC)
SETTINGS = PreflightSettings(secret=SECRET, log_group=f"/aws/lambda/{LEGO_API}")


def request(version: str | None = "3", **changes: Any) -> PreflightRequest:
    base: dict[str, Any] = {
        "function": LEGO_API,
        "alias": PRODUCTION_ALIAS,
        "version": version,
        "checks": SEED_CHECKS,
        "settings": SETTINGS,
    }
    return PreflightRequest(**(base | changes))


def periods(
    *, error_rate: float = 0.0002, p95_ms: float = 42.0, invocations: float = 4000
) -> list[PeriodFigures]:
    """The stable version's last hour: twelve 5-minute periods."""
    end = NOW.replace(minute=0)
    out = []
    for i in range(12):
        start = end - timedelta(minutes=5 * (12 - i))
        figures = VersionFigures(
            version="1", invocations=invocations, errors=invocations * error_rate, p95_ms=p95_ms
        )
        out.append(
            PeriodFigures(start=start, end=start + timedelta(minutes=5), canary=figures, stable=figures)
        )
    return out


@dataclass
class StaticMetrics:
    """A MetricsPort answering every request with the same periods (and remembering what it was asked)."""

    figures: list[PeriodFigures] = field(default_factory=periods)
    asked: list[WindowRequest] = field(default_factory=list)

    def fetch(self, requests: Sequence[WindowRequest]) -> dict[str, list[PeriodFigures]]:
        self.asked += requests
        return {r.deployment_id: list(self.figures) for r in requests}


class MotoPreflightWorld:
    """Call inside mock_aws(). Healthy as built; each `break_…` makes one check fail."""

    def __init__(self) -> None:
        self.lambdas = lambda_client(region=REGION)
        seed_lego_api(self.lambdas)
        self.ec2 = aws_client("ec2", region=REGION)
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock=SUBNET_CIDR)["Subnet"]["SubnetId"]
        self.sg_function = self.ec2.create_security_group(
            GroupName="lego-api", Description="the function", VpcId=vpc
        )["GroupId"]
        self.sg_cache = self.ec2.create_security_group(
            GroupName="lego-cache", Description="the cache", VpcId=vpc
        )["GroupId"]
        self.ec2.authorize_security_group_ingress(GroupId=self.sg_cache, IpPermissions=[self._cache_rule()])
        self.lambdas.update_function_configuration(
            FunctionName=LEGO_API,
            VpcConfig={"SubnetIds": [self.subnet], "SecurityGroupIds": [self.sg_function]},
        )
        self.version = publish(self.lambdas, LEGO_API, {**BASE_ENV, "REDIS_URL": CACHE_URL})
        self.vpc_id = self.lambdas.get_function_configuration(FunctionName=LEGO_API, Qualifier=self.version)[
            "VpcConfig"
        ]["VpcId"]
        self.secrets = aws_client("secretsmanager", region=REGION)
        self.secrets.create_secret(Name=SECRET, SecretString=CACHE_URL)
        self.cloudwatch = cloudwatch_client(region=REGION)
        self.put_billing_alarm(50)
        self.alarms = CloudWatchAlarms(self.cloudwatch, REGION)
        self.metrics = StaticMetrics()
        self.denied: set[str] = set()

    def _cache_rule(self) -> dict[str, Any]:
        return {
            "IpProtocol": "tcp",
            "FromPort": 6379,
            "ToPort": 6379,
            "UserIdGroupPairs": [{"GroupId": self.sg_function}],
        }

    def put_billing_alarm(self, usd: float) -> None:
        self.cloudwatch.put_metric_alarm(
            AlarmName="billing-estimated-charges",
            Namespace="AWS/Billing",
            MetricName="EstimatedCharges",
            Dimensions=[{"Name": "Currency", "Value": "USD"}],
            Statistic="Maximum",
            Period=21600,
            EvaluationPeriods=1,
            Threshold=usd,
            ComparisonOperator="GreaterThanThreshold",
        )

    # ------------------------------------------------------------ one check fails
    def break_cache_reachable(self) -> None:
        self.ec2.revoke_security_group_ingress(GroupId=self.sg_cache, IpPermissions=[self._cache_rule()])

    def break_secret(self) -> None:
        self.secrets.delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)

    def break_billing_alarm(self) -> None:
        self.cloudwatch.delete_alarms(AlarmNames=["billing-estimated-charges"])

    def break_alarms_quiet(self) -> None:
        self.cloudwatch.put_metric_alarm(
            AlarmName="lego-api-5xx",
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Dimensions=[{"Name": "FunctionName", "Value": LEGO_API}],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=10,
            ComparisonOperator="GreaterThanThreshold",
        )
        self.cloudwatch.set_alarm_state(AlarmName="lego-api-5xx", StateValue="ALARM", StateReason="test")

    def break_permissions(self) -> None:
        self.denied.add("cloudwatch:PutDashboard")

    def break_baseline_healthy(self) -> None:
        self.metrics.figures = periods(error_rate=0.02, p95_ms=250)

    # ------------------------------------------------------------ the adapter, with its stubbed clients
    def adapter(self, req: PreflightRequest) -> tuple[AwsPreflight, list[Stubber]]:
        elasticache = aws_client("elasticache", region=REGION)
        cache_stub = Stubber(elasticache)
        cache_stub.add_response(
            "describe_replication_groups",
            {
                "ReplicationGroups": [
                    {
                        "ReplicationGroupId": CACHE_ID,
                        "MemberClusters": [f"{CACHE_ID}-001"],
                        "NodeGroups": [
                            {"NodeGroupId": "0001", "PrimaryEndpoint": {"Address": CACHE_HOST, "Port": 6379}}
                        ],
                    }
                ]
            },
            {},
        )
        cache_stub.add_response(
            "describe_cache_clusters",
            {
                "CacheClusters": [
                    {
                        "CacheClusterId": f"{CACHE_ID}-001",
                        "SecurityGroups": [{"SecurityGroupId": self.sg_cache, "Status": "active"}],
                    }
                ]
            },
            {"CacheClusterId": f"{CACHE_ID}-001"},
        )
        iam = aws_client("iam", region=REGION)
        iam_stub = Stubber(iam)
        iam_stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    {
                        "EvalActionName": action,
                        "EvalDecision": "explicitDeny" if action in self.denied else "allowed",
                    }
                    for action in actions_to_simulate(req.settings)
                ],
                "IsTruncated": False,
            },
            {"PolicySourceArn": ANY, "ActionNames": list(actions_to_simulate(req.settings))},
        )
        cache_stub.activate()
        iam_stub.activate()
        adapter = AwsPreflight(
            lambda_client=self.lambdas,
            ec2=self.ec2,
            elasticache=elasticache,
            secretsmanager=self.secrets,
            billing_cloudwatch=self.cloudwatch,
            iam=iam,
            sts=aws_client("sts", region=REGION),
            clock=ManualClock(NOW),
            alarms=self.alarms,
            metrics=self.metrics,
        )
        return adapter, [cache_stub, iam_stub]

    # ------------------------------------------------------------ the same world in memory
    def mirrored_fake(self) -> FakePreflight:
        fake = FakePreflight()
        env = {**BASE_ENV, "REDIS_URL": CACHE_URL}
        fake.add_function(
            LEGO_API,
            alias=PRODUCTION_ALIAS,
            alias_version="1",
            env=env,
            versions=("1", "2", self.version),
            vpc_id=self.vpc_id,
            subnets={self.subnet: SUBNET_CIDR},
            security_groups=(self.sg_function,),
        )
        fn = fake.functions[LEGO_API]
        fn.versions["1"] = dict(BASE_ENV)
        fn.versions["2"] = {**BASE_ENV, "REDIS_URL": "redis://production-cache.cache.amazonaws.com:6379"}
        fn.no_vpc = {"1", "2"}
        fake.add_security_group(self.sg_function)
        fake.add_security_group(
            self.sg_cache,
            ingress=(SecurityRule(protocol="tcp", from_port=6379, to_port=6379, groups=(self.sg_function,)),),
        )
        rules = self.ec2.describe_security_groups(GroupIds=[self.sg_cache])["SecurityGroups"][0][
            "IpPermissions"
        ]
        if not rules:
            fake.security_groups[self.sg_cache] = SecurityGroup(
                id=self.sg_cache, egress=fake.security_groups[self.sg_cache].egress
            )
        fake.caches.append(
            CacheFacts(id=CACHE_ID, address=CACHE_HOST, port=6379, security_groups=(self.sg_cache,))
        )
        if self.secrets.list_secrets()["SecretList"]:
            fake.secrets.add(SECRET)
        for alarm in self.cloudwatch.describe_alarms(AlarmTypes=["MetricAlarm"])["MetricAlarms"]:
            if alarm.get("Namespace") == "AWS/Billing":
                fake.billing_alarms.append(
                    AlarmFact(
                        name=alarm["AlarmName"],
                        state=alarm["StateValue"],
                        namespace="AWS/Billing",
                        metric="EstimatedCharges",
                        threshold=alarm["Threshold"],
                    )
                )
            elif alarm["StateValue"] == "ALARM":
                fake.firing.setdefault(LEGO_API, []).append(alarm["AlarmName"])
        fake.denied = set(self.denied)
        fake.baseline[LEGO_API] = list(self.metrics.figures)
        return fake
