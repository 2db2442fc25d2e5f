"""Start-up errors are one line and exit 2; /healthz reports whether the scheduler and alarm poller live."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.clock import ManualClock
from bot.config import Settings
from bot.http_server import make_wsgi_app
from bot.runtime import AwsAdapters, Runtime, build_runtime
from bot.slack_client import RetryPolicy, make_web_client
from bot.store import StoreUnavailable, open_store
from canary_demo import slack_requests as req
from canary_demo.fake_slack import FakeSlack
from canary_demo.fakes.alarms import FakeAlarms
from canary_demo.fakes.metrics import FakeMetrics
from canary_demo.fakes.traffic import lego_api_world
from tests.support.world import policy_with
from tests.test_http_server import call


def _unopenable(tmp_path: Path) -> list[str]:
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("x")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a SQLite database" * 100)
    return [f"sqlite:///{not_a_dir}/canary.db", f"sqlite:///{garbage}", f"sqlite:///{tmp_path}"]


def test_a_store_that_cannot_be_opened_raises_one_clear_error(tmp_path: Path) -> None:
    for url in _unopenable(tmp_path):
        with pytest.raises(StoreUnavailable, match="cannot open the store"):
            open_store(url)


@pytest.mark.parametrize("verb", [["status"], ["serve"]])
def test_the_cli_and_serve_say_one_line_and_exit_2_when_the_store_cannot_be_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], verb: list[str]
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    for url in _unopenable(tmp_path):
        monkeypatch.setenv("CANARY_STORE_URL", url)
        assert main(verb) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert "cannot open the store" in err[0] and "Traceback" not in err[0]


class DyingQueue:
    """An alarm poller whose loop has ended (as after an unexpected error) although nobody asked it to stop."""

    def run_forever(self, stop: threading.Event) -> None:
        return


class WaitingQueue:
    def run_forever(self, stop: threading.Event) -> None:
        stop.wait(10)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    with FakeSlack() as slack:
        client = make_web_client(
            "xoxb-test", base_url=slack.base_url, retry=RetryPolicy(sleep=lambda _s: None)
        )
        settings = Settings(SLACK_SIGNING_SECRET=req.SIGNING_SECRET, SLACK_BOT_TOKEN="xoxb-test")
        rt = build_runtime(
            settings,
            slack=client,
            clock=ManualClock(),
            store=open_store("sqlite://:memory:"),
            aws=AwsAdapters(traffic=lego_api_world(), metrics=FakeMetrics(), alarms=FakeAlarms("us-east-1")),
            policy=policy_with(),
        )
        yield rt
        rt.scheduler.shutdown(wait=False)
        if rt.outbox_worker is not None:
            rt.outbox_worker.stop()


def _healthz(rt: Runtime) -> tuple[int, dict[str, Any]]:
    answer = call(make_wsgi_app(None, sns_handler=None, health=rt.health), "GET", "/healthz")
    return answer.status, json.loads(answer.body)


def test_healthz_is_ok_while_the_scheduler_and_the_alarm_poller_run(runtime: Runtime) -> None:
    stop = threading.Event()
    runtime.alarm_queue = WaitingQueue()
    runtime.start_background(stop)
    try:
        status, body = _healthz(runtime)
        assert status == 200 and body["scheduler"] == "running" and body["alarm_queue"] == "polling"
    finally:
        stop.set()


def test_healthz_is_503_when_the_scheduler_has_died(runtime: Runtime) -> None:
    runtime.start_background(threading.Event())
    runtime.scheduler.shutdown(wait=False)
    status, body = _healthz(runtime)
    assert status == 503 and body["scheduler"] == "stopped"


def test_healthz_is_503_when_the_alarm_poller_has_died(runtime: Runtime) -> None:
    runtime.alarm_queue = DyingQueue()
    runtime.start_background(threading.Event())
    assert runtime.alarm_thread is not None
    runtime.alarm_thread.join(timeout=5)
    status, body = _healthz(runtime)
    assert status == 503 and body["alarm_queue"] == "stopped" and body["scheduler"] == "running"


def test_healthz_is_503_when_the_outbox_worker_has_stopped(runtime: Runtime) -> None:
    runtime.start_background(threading.Event())
    assert runtime.outbox_worker is not None
    assert _healthz(runtime)[1]["outbox"] == "delivering"
    runtime.outbox_worker.stop()
    status, body = _healthz(runtime)
    assert status == 503 and body["outbox"] == "stopped"
