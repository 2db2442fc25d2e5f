"""AlarmsPort: one contract suite over the fake and CloudWatch (moto), then what CloudWatch itself stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.cloudwatch.models import cloudwatch_backends

from bot.aws.alarms import CloudWatchAlarms, dashboard_name
from bot.model import Deployment, Thresholds
from bot.ports import AlarmsPort, AwsFailure
from canary_demo.fakes.alarms import FakeAlarms

REGION = "us-east-1"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:canary-bot-alarms"
NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
FUNCTION = "production-lego-api"
ERROR_RATE_ALARM = f"canary-bot/{FUNCTION}/production/v2/error-rate"
P95_ALARM = f"canary-bot/{FUNCTION}/production/v2/p95"


def deployment(**changes: Any) -> Deployment:
    fields: dict[str, Any] = {
        "id": "d-20261128-1400-ab12",
        "function": FUNCTION,
        "alias": "production",
        "stable_version": "1",
        "canary_version": "2",
        "steps": (0.05,),
        "weight": 0.05,
        "soak": timedelta(hours=1),
        "created_by": "U0RELEASER",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Deployment(**(fields | changes))


class World(Protocol):
    """What a test needs besides the port: CloudWatch's side of things."""

    adapter: AlarmsPort

    def set_state(self, name: str, state: str) -> None: ...
    def add_foreign_alarm(self, name: str, function: str | None, state: str) -> None: ...
    def alarm_names(self) -> set[str]: ...
    def has_dashboard(self, name: str) -> bool: ...


class FakeWorld:
    def __init__(self) -> None:
        self.fake = FakeAlarms(region=REGION)
        self.adapter: AlarmsPort = self.fake

    def set_state(self, name: str, state: str) -> None:
        self.fake.set_state(name, state)  # type: ignore[arg-type]

    def add_foreign_alarm(self, name: str, function: str | None, state: str) -> None:
        self.fake.add_alarm(name, function=function, state=state)  # type: ignore[arg-type]

    def alarm_names(self) -> set[str]:
        return set(self.fake.alarms)

    def has_dashboard(self, name: str) -> bool:
        return name in self.fake.dashboards


class MotoWorld:
    def __init__(self) -> None:
        self.cw = boto3.client("cloudwatch", region_name=REGION)
        self.adapter: AlarmsPort = CloudWatchAlarms(self.cw, REGION)

    def set_state(self, name: str, state: str) -> None:
        self.cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")  # type: ignore[arg-type]

    def add_foreign_alarm(self, name: str, function: str | None, state: str) -> None:
        self.cw.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Dimensions=[{"Name": "FunctionName", "Value": function}] if function else [],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        self.set_state(name, state)

    def alarm_names(self) -> set[str]:
        return {a["AlarmName"] for a in self.cw.describe_alarms()["MetricAlarms"]}

    def has_dashboard(self, name: str) -> bool:
        return any(d["DashboardName"] == name for d in self.cw.list_dashboards()["DashboardEntries"])


@pytest.fixture(scope="module")
def moto_cloudwatch() -> Iterator[None]:
    # One mock for the module, reset per test: starting mock_aws costs more than most of these tests.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            yield


@pytest.fixture
def aws_env(moto_cloudwatch: None) -> None:
    cloudwatch_backends.reset()


@pytest.fixture(params=["fake", "moto"])
def world(request: pytest.FixtureRequest) -> World:
    if request.param == "fake":
        return FakeWorld()
    request.getfixturevalue("aws_env")
    return MotoWorld()


# ================================================================ contract (fake and moto)
def test_creates_error_rate_and_p95_alarms_named_for_function_alias_and_version(world: World) -> None:
    names = world.adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    assert names == [ERROR_RATE_ALARM, P95_ALARM]
    assert world.alarm_names() == set(names)


def test_metric_without_threshold_gets_no_alarm(world: World) -> None:
    names = world.adapter.create_canary_alarms(
        deployment(), topic_arn=TOPIC, thresholds=Thresholds(error_rate=None)
    )
    assert names == [P95_ALARM]
    assert world.alarm_names() == {P95_ALARM}


def test_creating_again_overwrites_instead_of_duplicating(world: World) -> None:
    first = world.adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    second = world.adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    assert first == second
    assert world.alarm_names() == set(first)


def test_deleting_removes_only_the_named_alarms_and_ignores_unknown_names(world: World) -> None:
    world.add_foreign_alarm("team-owned-alarm", FUNCTION, "OK")
    names = world.adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    world.adapter.delete_alarms([*names, "never-existed"])
    assert world.alarm_names() == {"team-owned-alarm"}


def test_no_alarm_in_alarm_while_everything_is_ok(world: World) -> None:
    world.adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    assert world.adapter.alarms_in_alarm(FUNCTION) == []


def test_canary_alarm_in_alarm_is_reported_for_its_function_only(world: World) -> None:
    world.adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    world.adapter.create_canary_alarms(
        deployment(id="d-other", function="orders-api"), topic_arn=TOPIC, thresholds=Thresholds()
    )
    world.set_state(ERROR_RATE_ALARM, "ALARM")
    world.set_state("canary-bot/orders-api/production/v2/p95", "ALARM")
    assert world.adapter.alarms_in_alarm(FUNCTION) == [ERROR_RATE_ALARM]
    assert world.adapter.alarms_in_alarm("orders-api") == ["canary-bot/orders-api/production/v2/p95"]


def test_other_alarms_about_the_function_count_by_dimension_or_name(world: World) -> None:
    world.add_foreign_alarm("lego-throttles", FUNCTION, "ALARM")  # FunctionName dimension
    world.add_foreign_alarm(f"{FUNCTION}-5xx-high", None, "ALARM")  # the name says so
    world.add_foreign_alarm("billing-over-50", None, "ALARM")  # about nothing we run
    world.add_foreign_alarm(f"{FUNCTION}-quiet", FUNCTION, "OK")
    assert world.adapter.alarms_in_alarm(FUNCTION) == sorted([f"{FUNCTION}-5xx-high", "lego-throttles"])


def test_function_name_inside_a_longer_word_is_not_a_match(world: World) -> None:
    world.add_foreign_alarm("rapidapi-latency", None, "ALARM")
    world.add_foreign_alarm("apiary-errors", None, "ALARM")
    world.add_foreign_alarm("api-errors", None, "ALARM")
    assert world.adapter.alarms_in_alarm("api") == ["api-errors"]


def test_our_alarm_names_are_matched_on_the_function_exactly(world: World) -> None:
    world.adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    world.set_state(P95_ALARM, "ALARM")
    # 'lego-api' is a word inside 'production-lego-api' but not the same function.
    assert world.adapter.alarms_in_alarm("lego-api") == []


def test_dashboard_is_created_with_a_console_url(world: World) -> None:
    url = world.adapter.put_dashboard(deployment(), thresholds=Thresholds())
    name = "canary-bot-production-lego-api-production-d-20261128-1400-ab12"
    assert url == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards:name={name}"
    )
    assert world.has_dashboard(name)


def test_dashboard_name_keeps_only_allowed_characters(world: World) -> None:
    odd = deployment(id="d 2026/11:28.α")
    url = world.adapter.put_dashboard(odd)
    assert url.endswith("#dashboards:name=canary-bot-production-lego-api-production-d-2026-11-28--")
    assert world.has_dashboard(dashboard_name(odd))


def test_alarm_period_must_be_whole_minutes(world: World) -> None:
    with pytest.raises(ValueError, match="multiple of 60"):
        world.adapter.create_canary_alarms(
            deployment(), topic_arn=TOPIC, thresholds=Thresholds(), period_seconds=90
        )


# ================================================================ what CloudWatch stores (moto)
@pytest.fixture
def cw(aws_env: None) -> Any:
    return boto3.client("cloudwatch", region_name=REGION)


def stored(cw: Any, name: str) -> dict[str, Any]:
    (alarm,) = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return dict(alarm)


CANARY_DIMENSIONS = [
    {"Name": "FunctionName", "Value": FUNCTION},
    {"Name": "Resource", "Value": f"{FUNCTION}:production"},
    {"Name": "ExecutedVersion", "Value": "2"},
]


def test_error_rate_alarm_is_metric_math_over_the_canary_version(cw: Any) -> None:
    CloudWatchAlarms(cw, REGION).create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    alarm = stored(cw, ERROR_RATE_ALARM)
    assert alarm["Threshold"] == 0.001
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (2, 2)
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [TOPIC]
    assert alarm["OKActions"] == [TOPIC]
    assert "d-20261128-1400-ab12" in alarm["AlarmDescription"]
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    assert queries["e1"]["Expression"] == "m_errors / m_invocations"
    assert queries["e1"]["ReturnData"] is True
    for query_id, metric in (("m_errors", "Errors"), ("m_invocations", "Invocations")):
        stat = queries[query_id]["MetricStat"]
        assert queries[query_id]["ReturnData"] is False
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"]) == ("AWS/Lambda", metric)
        assert stat["Metric"]["Dimensions"] == CANARY_DIMENSIONS
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)


def test_p95_alarm_watches_canary_duration_percentile(cw: Any) -> None:
    CloudWatchAlarms(cw, REGION).create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    alarm = stored(cw, P95_ALARM)
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Duration")
    assert alarm["ExtendedStatistic"] == "p95"
    assert alarm["Dimensions"] == CANARY_DIMENSIONS
    assert (alarm["Threshold"], alarm["Period"]) == (100.0, 300)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [TOPIC]


def test_alarm_tags_name_the_deployment(cw: Any) -> None:
    CloudWatchAlarms(cw, REGION).create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    tags = cw.list_tags_for_resource(ResourceARN=stored(cw, P95_ALARM)["AlarmArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "canary-bot:deployment": "d-20261128-1400-ab12",
        "canary-bot:function": FUNCTION,
        "canary-bot:alias": "production",
        "canary-bot:version": "2",
    }


def test_policy_thresholds_and_windows_reach_the_alarms(cw: Any) -> None:
    thresholds = Thresholds(error_rate=0.02, p95_ms=250)
    CloudWatchAlarms(cw, REGION).create_canary_alarms(
        deployment(), topic_arn=None, thresholds=thresholds, period_seconds=60, evaluation_periods=3
    )
    rate, p95 = stored(cw, ERROR_RATE_ALARM), stored(cw, P95_ALARM)
    assert (rate["Threshold"], p95["Threshold"]) == (0.02, 250.0)
    assert p95["Period"] == 60
    assert all(q["MetricStat"]["Period"] == 60 for q in rate["Metrics"] if "MetricStat" in q)
    assert (rate["EvaluationPeriods"], rate["DatapointsToAlarm"]) == (3, 3)
    assert rate["AlarmActions"] == [] and rate["OKActions"] == []  # no topic: alarms, no notifications


def test_dashboard_holds_the_seed_widgets_per_version(cw: Any) -> None:
    CloudWatchAlarms(cw, REGION).put_dashboard(deployment(), thresholds=Thresholds())
    body = json.loads(cw.get_dashboard(DashboardName=dashboard_name(deployment()))["DashboardBody"])
    widgets = {w["properties"].get("title"): w for w in body["widgets"]}

    errors = widgets["Error rate (5-minute buckets)"]["properties"]
    lines = [m for m in errors["metrics"] if isinstance(m[0], str)]
    per_version = {(m[1], m[7]) for m in lines}
    assert per_version == {("Errors", "2"), ("Invocations", "2"), ("Errors", "1"), ("Invocations", "1")}
    assert all(
        m[2:7] == ["FunctionName", FUNCTION, "Resource", f"{FUNCTION}:production", "ExecutedVersion"]
        for m in lines
    )
    expressions = {m[0]["id"]: m[0]["expression"] for m in errors["metrics"] if isinstance(m[0], dict)}
    assert expressions == {
        "rate_canary": "100 * errors_canary / invocations_canary",
        "rate_stable": "100 * errors_stable / invocations_stable",
    }
    assert errors["annotations"]["horizontal"][0]["value"] == pytest.approx(0.1)  # 0.1 % on the rate axis

    latency = widgets["Latency percentiles"]["properties"]
    assert {(m[7], m[8]["stat"]) for m in latency["metrics"]} == {
        (v, p) for v in ("1", "2") for p in ("p50", "p95", "p99")
    }
    assert [a["value"] for a in latency["annotations"]["horizontal"]] == [100.0, 300.0]

    cache = widgets["Cache performance per version (Logs Insights)"]
    assert cache["type"] == "log"
    query = cache["properties"]["query"]
    assert query.startswith(f"SOURCE '/aws/lambda/{FUNCTION}'")
    assert "filter @message like /Redis cache/" in query
    assert 'filter version in ["2", "1"]' in query
    assert cache["properties"]["region"] == REGION


def test_dashboard_uses_the_policy_log_group(cw: Any) -> None:
    CloudWatchAlarms(cw, REGION).put_dashboard(deployment(), log_group="/custom/lego")
    body = json.loads(cw.get_dashboard(DashboardName=dashboard_name(deployment()))["DashboardBody"])
    (cache,) = [w for w in body["widgets"] if w["type"] == "log"]
    assert cache["properties"]["query"].startswith("SOURCE '/custom/lego'")


def test_dashboard_refuses_a_log_group_that_would_break_the_query(cw: Any) -> None:
    with pytest.raises(ValueError, match="not a log group"):
        CloudWatchAlarms(cw, REGION).put_dashboard(deployment(), log_group="x' | delete")


class RecordingCloudWatch:
    """Passes calls through to moto and remembers the DeleteAlarms batches."""

    def __init__(self, cw: Any) -> None:
        self._cw = cw
        self.delete_batches: list[int] = []

    def delete_alarms(self, AlarmNames: list[str]) -> None:
        self.delete_batches.append(len(AlarmNames))
        self._cw.delete_alarms(AlarmNames=AlarmNames)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cw, name)


def test_deleting_many_alarms_goes_in_batches_of_100(cw: Any) -> None:
    names = [f"old-alarm-{i}" for i in range(230)]
    for name in names:
        cw.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
    recording = RecordingCloudWatch(cw)
    CloudWatchAlarms(recording, REGION).delete_alarms(names)  # type: ignore[arg-type]
    assert recording.delete_batches == [100, 100, 30]
    assert cw.describe_alarms()["MetricAlarms"] == []


# ================================================================ errors and paging (Stubber)
def stubbed() -> tuple[CloudWatchAlarms, Stubber]:
    client = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return CloudWatchAlarms(client, REGION), Stubber(client)


def test_failed_creation_removes_the_alarms_already_made_and_raises_aws_failure() -> None:
    adapter, stub = stubbed()
    stub.add_response("put_metric_alarm", {})
    stub.add_client_error("put_metric_alarm", "LimitExceeded", "too many alarms", http_status_code=400)
    stub.add_response("delete_alarms", {}, {"AlarmNames": [ERROR_RATE_ALARM]})
    with stub, pytest.raises(AwsFailure, match="LimitExceeded: too many alarms"):
        adapter.create_canary_alarms(deployment(), topic_arn=TOPIC, thresholds=Thresholds())
    stub.assert_no_pending_responses()


def test_alarms_in_alarm_reads_every_page_and_matches_metric_math_dimensions() -> None:
    adapter, stub = stubbed()

    def alarm(name: str, **shape: Any) -> dict[str, Any]:
        return {"AlarmName": name, "StateValue": "ALARM", **shape}

    on_lego = [{"Name": "FunctionName", "Value": FUNCTION}]
    metric = {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": on_lego}
    math = [{"Id": "m1", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}]
    expected = {"StateValue": "ALARM", "AlarmTypes": ["MetricAlarm"]}
    stub.add_response(
        "describe_alarms",
        {"MetricAlarms": [alarm("math-on-lego", Metrics=math)], "NextToken": "p2"},
        expected,
    )
    stub.add_response(
        "describe_alarms",
        {
            "MetricAlarms": [
                alarm("by-resource", Dimensions=[{"Name": "Resource", "Value": f"{FUNCTION}:live"}])
            ]
        },
        expected | {"NextToken": "p2"},
    )
    with stub:
        assert adapter.alarms_in_alarm(FUNCTION) == ["by-resource", "math-on-lego"]


def test_dashboard_failure_is_an_aws_failure() -> None:
    adapter, stub = stubbed()
    stub.add_client_error("put_dashboard", "InvalidParameterInput", "bad body", http_status_code=400)
    with stub, pytest.raises(AwsFailure, match="PutDashboard"):
        adapter.put_dashboard(deployment())
