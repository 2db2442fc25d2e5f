"""The fault proxy itself: operations named as botocore names them, each fault as botocore sees it, holds."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from canary_demo.seed import LEGO_API, PRODUCTION_ALIAS, seed_lego_api
from tests.support.fault_proxy import FaultProxy, delay, drop, identify, server_error, throttle
from tests.support.moto_server import reset_moto, running_moto

pytestmark = pytest.mark.faults
REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with running_moto() as url:
        yield url


@pytest.fixture
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    reset_moto(moto_url)
    seed_lego_api(
        boto3.client("lambda", endpoint_url=moto_url, region_name=REGION),
        boto3.client("iam", endpoint_url=moto_url, region_name=REGION),
    )
    with FaultProxy(moto_url) as fp:
        yield fp


def _client(service: str, url: str, attempts: int = 2) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=10)
    return boto3.client(service, endpoint_url=url, region_name=REGION, config=config)  # type: ignore[call-overload]


def _update_alias(client: Any, weight: float = 0.05) -> None:
    client.update_alias(
        FunctionName=LEGO_API,
        Name=PRODUCTION_ALIAS,
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": weight}},
    )


def _weights(moto_url: str) -> dict[str, float]:
    alias = _client("lambda", moto_url).get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
    return dict(alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}))


def test_operations_are_named_as_botocore_names_them_for_every_protocol_the_bot_uses(
    proxy: FaultProxy,
) -> None:
    lam = _client("lambda", proxy.url)
    lam.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)  # rest-json GET
    _update_alias(lam)  # rest-json PUT /2015-03-31/functions/{fn}/aliases/{alias}
    lam.list_versions_by_function(FunctionName=LEGO_API)
    _client("cloudwatch", proxy.url).describe_alarms()  # json (X-Amz-Target), as this botocore prefers
    sqs = _client("sqs", proxy.url)
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    _client("sns", proxy.url).create_topic(Name="t")  # query (Action=CreateTopic)
    for op in ("GetAlias", "UpdateAlias", "ListVersionsByFunction", "DescribeAlarms", "ReceiveMessage"):
        assert proxy.seen(op) == 1, op
    assert proxy.seen("CreateTopic") == 1 and proxy.forwarded("UpdateAlias") == 1
    assert [r.protocol for r in proxy.requests("UpdateAlias")] == ["rest-json"]


def test_the_rpc_v2_cbor_path_names_its_operation() -> None:
    _, op, protocol = identify(
        "POST", "/service/GraniteServiceVersion20100801/operation/GetMetricData", {}, b""
    )
    assert (op, protocol) == ("GetMetricData", "smithy-rpc-v2-cbor")


@pytest.mark.parametrize(
    ("fault", "code"),
    [(throttle(), "ThrottlingException"), (server_error(), "ServiceException")],
)
def test_a_fault_on_every_attempt_reaches_botocore_as_the_error_code_after_its_retries(
    proxy: FaultProxy, moto_url: str, fault: Any, code: str
) -> None:
    proxy.fail("UpdateAlias", fault)
    with pytest.raises(ClientError) as raised:
        _update_alias(_client("lambda", proxy.url, attempts=2))
    assert raised.value.response["Error"]["Code"] == code
    assert proxy.seen("UpdateAlias") == 2 and proxy.forwarded("UpdateAlias") == 0
    assert _weights(moto_url) == {}
    proxy.clear()
    _update_alias(_client("lambda", proxy.url))
    assert _weights(moto_url) == {"2": 0.05}


def test_a_throttle_for_a_json_protocol_operation_parses_too(proxy: FaultProxy) -> None:
    proxy.fail("DescribeAlarms", throttle())
    with pytest.raises(ClientError) as raised:
        _client("cloudwatch", proxy.url, attempts=1).describe_alarms()
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"


def test_a_dropped_connection_is_a_connection_error_and_after_forwarding_the_write_landed(
    proxy: FaultProxy, moto_url: str
) -> None:
    proxy.fail("UpdateAlias", drop(), times=1)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        _update_alias(_client("lambda", proxy.url, attempts=1))
    assert _weights(moto_url) == {}
    proxy.fail("UpdateAlias", drop(after=True), times=1)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        _update_alias(_client("lambda", proxy.url, attempts=1), weight=0.25)
    assert _weights(moto_url) == {"2": 0.25}


def test_delay_delays_and_a_rule_with_times_expires(proxy: FaultProxy) -> None:
    proxy.fail("GetAlias", delay(0.3), times=1)
    lam = _client("lambda", proxy.url)
    began = time.monotonic()
    lam.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
    assert time.monotonic() - began >= 0.3
    began = time.monotonic()
    lam.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)
    assert time.monotonic() - began < 0.3


def test_a_held_call_reaches_moto_only_when_released(proxy: FaultProxy, moto_url: str) -> None:
    held = proxy.hold("UpdateAlias")
    done = threading.Event()

    def call() -> None:
        _update_alias(_client("lambda", proxy.url))
        done.set()

    thread = threading.Thread(target=call)
    thread.start()
    try:
        held.wait_held(timeout=5)
        time.sleep(0.1)
        assert not done.is_set() and proxy.forwarded("UpdateAlias") == 0 and _weights(moto_url) == {}
        held.release()
        assert done.wait(5)
    finally:
        held.release()
        thread.join(timeout=10)
    assert held.wait_finished(1) == "released" and _weights(moto_url) == {"2": 0.05}


_CLIENT_SCRIPT = textwrap.dedent(
    """
    import sys, boto3
    from botocore.config import Config
    c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                     config=Config(retries={"total_max_attempts": 1}, read_timeout=60))
    c.update_alias(FunctionName=sys.argv[2], Name="production", FunctionVersion="1",
                   RoutingConfig={"AdditionalVersionWeights": {"2": 0.05}})
    """
)


@pytest.mark.parametrize(("when", "landed"), [("before", False), ("after", True)])
def test_sigkill_while_held_abandons_the_call_before_or_after_it_reached_moto(
    proxy: FaultProxy, moto_url: str, when: Any, landed: bool
) -> None:
    held = proxy.hold("UpdateAlias", when=when)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    client = subprocess.Popen([sys.executable, "-c", _CLIENT_SCRIPT, proxy.url, LEGO_API], env=env)
    try:
        held.wait_held(timeout=30)
        os.kill(client.pid, signal.SIGKILL)
        client.wait(timeout=10)
        assert held.wait_finished(timeout=5) == "abandoned"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=10)
    assert proxy.forwarded("UpdateAlias") == (1 if landed else 0)
    assert _weights(moto_url) == ({"2": 0.05} if landed else {})


def test_an_answer_arrives_in_one_piece(proxy: FaultProxy) -> None:
    """Status line, headers and body in one send: a single recv gets all of it."""
    with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), timeout=5) as s:
        s.sendall(b"GET /moto-api/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        select.select([s], [], [], 5)
        first = s.recv(1 << 20)
    head, _, body = first.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    assert len(body) == length > 0


def test_the_emulated_revision_id_guard_refuses_a_write_on_an_older_revision(proxy: FaultProxy) -> None:
    proxy.emulate_revision_ids()
    lam = _client("lambda", proxy.url)
    seen = lam.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)["RevisionId"]
    routing = {"AdditionalVersionWeights": {"2": 0.05}}
    updated = lam.update_alias(
        FunctionName=LEGO_API,
        Name=PRODUCTION_ALIAS,
        FunctionVersion="1",
        RoutingConfig=routing,
        RevisionId=seen,
    )
    assert updated["RevisionId"] != seen
    assert lam.get_alias(FunctionName=LEGO_API, Name=PRODUCTION_ALIAS)["RevisionId"] == updated["RevisionId"]
    with pytest.raises(ClientError) as raised:
        lam.update_alias(
            FunctionName=LEGO_API,
            Name=PRODUCTION_ALIAS,
            FunctionVersion="1",
            RoutingConfig={},
            RevisionId=seen,
        )
    assert raised.value.response["Error"]["Code"] == "PreconditionFailedException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert proxy.forwarded("UpdateAlias") == 1
