"""LogsInsightsCache: query lifecycle (Stubber), scheduling under the concurrency cap, reading stats rows."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import ANY

from bot.aws.cache_logs import DEFAULT_CACHE_QUERY, LogsInsightsCache, parse_cache_rows, period_label
from bot.aws.metrics import CacheCounts
from bot.ports import WindowRequest
from tests.support.cloudwatch_responses import (
    ManualClock,
    ScriptedLogsClient,
    cache_rows,
    query_results_response,
    start_query_response,
    stats_row,
    stubbed_client,
)

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
FIVE_MIN = timedelta(minutes=5)
GROUP = "/aws/lambda/orders"


def window(
    deployment_id: str = "dep-1",
    *,
    log_group: str | None = GROUP,
    minutes: int = 15,
    period_seconds: int = 300,
    cache_query: str | None = None,
) -> WindowRequest:
    return WindowRequest(
        deployment_id=deployment_id,
        function="orders",
        alias="live",
        canary_version="7",
        stable_version="6",
        start=T0,
        end=T0 + timedelta(minutes=minutes),
        period_seconds=period_seconds,
        log_group=log_group,
        cache_query=cache_query,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def logs() -> Any:
    client, stubber = stubbed_client("logs")
    yield client, stubber
    stubber.assert_no_pending_responses()


def source(client: Any, clock: ManualClock, **kwargs: Any) -> LogsInsightsCache:
    return LogsInsightsCache(client, sleep=clock.sleep, monotonic=clock.monotonic, **kwargs)


def start_params(query_string: Any = ANY, group: str = GROUP, minutes: int = 15) -> dict[str, Any]:
    return {
        "logGroupName": group,
        "startTime": int(T0.timestamp()),
        "endTime": int((T0 + timedelta(minutes=minutes)).timestamp()),
        "queryString": query_string,
    }


def test_running_then_complete_rows_become_counts_per_version_and_period(
    logs: Any, clock: ManualClock
) -> None:
    client, stubber = logs
    stubber.add_response("start_query", start_query_response("q-1"), start_params())
    stubber.add_response("get_query_results", query_results_response("Scheduled"), {"queryId": "q-1"})
    stubber.add_response("get_query_results", query_results_response("Running"), {"queryId": "q-1"})
    rows = [
        *cache_rows("7", T0, hits=45, misses=5, miss_p95_ms=180.0),
        *cache_rows("6", T0, hits=95, misses=5, miss_p95_ms=120.5),
        *cache_rows("7", T0 + FIVE_MIN, hits=10, misses=0),
    ]
    stubber.add_response("get_query_results", query_results_response("Complete", rows), {"queryId": "q-1"})

    figures = source(client, clock).fetch([window()])

    assert figures == {
        "dep-1": {
            ("7", T0): CacheCounts(hits=45, misses=5, miss_p95_ms=180.0),
            ("6", T0): CacheCounts(hits=95, misses=5, miss_p95_ms=120.5),
            ("7", T0 + FIVE_MIN): CacheCounts(hits=10, misses=0, miss_p95_ms=None),
        }
    }
    assert len(clock.sleeps) == 3  # one pause before each poll, none after the answer


@pytest.mark.parametrize("status", ["Failed", "Cancelled", "Timeout"])
def test_a_query_that_ends_badly_leaves_figures_missing_with_a_warning(
    logs: Any, clock: ManualClock, caplog: pytest.LogCaptureFixture, status: str
) -> None:
    client, stubber = logs
    stubber.add_response("start_query", start_query_response("q-1"), start_params())
    stubber.add_response("get_query_results", query_results_response(status), {"queryId": "q-1"})

    with caplog.at_level(logging.WARNING, logger="bot.aws.cache_logs"):
        figures = source(client, clock).fetch([window()])

    assert figures == {}
    assert f"ended {status}" in caplog.text and "dep-1" in caplog.text


def test_a_query_past_our_timeout_is_stopped_and_left_missing(logs: Any, clock: ManualClock) -> None:
    client, stubber = logs
    stubber.add_response("start_query", start_query_response("q-1"), start_params())
    for _ in range(3):  # polled at 10 s, 20 s, 30 s of a 25 s budget
        stubber.add_response("get_query_results", query_results_response("Running"), {"queryId": "q-1"})
    stubber.add_response("stop_query", {"success": True}, {"queryId": "q-1"})

    figures = source(client, clock, timeout_seconds=25, poll_interval_seconds=10).fetch([window()])

    assert figures == {}
    assert clock.now == 30


def test_start_query_refused_leaves_that_deployment_missing_and_others_served(
    logs: Any, clock: ManualClock
) -> None:
    client, stubber = logs
    stubber.add_client_error("start_query", "ResourceNotFoundException", "log group does not exist")
    stubber.add_response(
        "start_query", start_query_response("q-2"), start_params(group="/aws/lambda/payments")
    )
    stubber.add_response(
        "get_query_results",
        query_results_response("Complete", cache_rows("7", T0, hits=3, misses=1)),
        {"queryId": "q-2"},
    )

    figures = source(client, clock).fetch([window("gone"), window("ok", log_group="/aws/lambda/payments")])

    assert set(figures) == {"ok"}
    assert figures["ok"][("7", T0)] == CacheCounts(hits=3, misses=1)


def test_account_query_limit_waits_for_one_of_ours_to_finish(logs: Any, clock: ManualClock) -> None:
    client, stubber = logs
    stubber.add_response("start_query", start_query_response("q-1"), start_params())
    stubber.add_client_error("start_query", "LimitExceededException", "too many concurrent queries")
    stubber.add_response("get_query_results", query_results_response("Complete"), {"queryId": "q-1"})
    stubber.add_response(
        "start_query", start_query_response("q-2"), start_params(group="/aws/lambda/payments")
    )
    stubber.add_response("get_query_results", query_results_response("Complete"), {"queryId": "q-2"})

    figures = source(client, clock).fetch([window("a"), window("b", log_group="/aws/lambda/payments")])

    assert set(figures) == {"a", "b"}


def test_custom_query_gets_the_period_substituted(logs: Any, clock: ManualClock) -> None:
    client, stubber = logs
    parse = "parse @message /took (?<ms>\\d{1,5})ms/"  # braces of its own, left alone
    custom = f"filter @message like /cache/ | {parse} | stats count(*) by bin({{period}})"
    expected = f"filter @message like /cache/ | {parse} | stats count(*) by bin(1m)"
    stubber.add_response("start_query", start_query_response("q-1"), start_params(expected, minutes=3))
    stubber.add_response("get_query_results", query_results_response("Complete"), {"queryId": "q-1"})

    assert source(client, clock).fetch([window(minutes=3, period_seconds=60, cache_query=custom)]) == {
        "dep-1": {}
    }


def test_default_query_bins_by_the_request_period(logs: Any, clock: ManualClock) -> None:
    client, stubber = logs
    stubber.add_response(
        "start_query",
        start_query_response("q-1"),
        start_params(DEFAULT_CACHE_QUERY.replace("{period}", "5m")),
    )
    stubber.add_response("get_query_results", query_results_response("Complete"), {"queryId": "q-1"})

    source(client, clock).fetch([window()])


def test_requests_without_log_group_or_whole_period_start_no_query(clock: ManualClock) -> None:
    client = ScriptedLogsClient()

    figures = source(client, clock).fetch([window("no-logs", log_group=None), window("short", minutes=4)])

    assert figures == {} and client.started == []


def test_never_more_than_max_concurrent_queries_in_flight(clock: ManualClock) -> None:
    groups = [f"/aws/lambda/fn-{i}" for i in range(5)]
    client = ScriptedLogsClient(
        polls=2, rows_by_group={g: cache_rows("7", T0, hits=i + 1, misses=1) for i, g in enumerate(groups)}
    )
    requests = [window(f"dep-{i}", log_group=g) for i, g in enumerate(groups)]

    figures = source(client, clock, max_concurrent=2).fetch(requests)

    assert client.max_in_flight == 2
    assert client.started == groups
    assert {d: f[("7", T0)].hits for d, f in figures.items()} == {f"dep-{i}": i + 1 for i in range(5)}


@pytest.mark.parametrize("limit", [0, 30, 31])
def test_concurrency_limit_must_stay_below_the_account_limit(clock: ManualClock, limit: int) -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        source(ScriptedLogsClient(), clock, max_concurrent=limit)


# ---------------------------------------------------------------- rows and query text
def test_rows_with_hits_and_misses_columns_are_read_too() -> None:
    rows = [
        stats_row(
            version="$LATEST", **{"bin(5m)": "2026-11-28 14:05:00.000"}, hits=7, misses=3, miss_p95_ms=99
        )
    ]

    assert parse_cache_rows(window(), rows) == {("$LATEST", T0 + FIVE_MIN): CacheCounts(7, 3, 99.0)}


def test_rows_outside_the_window_or_unreadable_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        stats_row(version="7", cache_result="hit", period_start="2026-11-28 13:55:00.000", events=4),
        stats_row(version="7", cache_result="hit", period_start="2026-11-28 14:15:00.000", events=4),
        stats_row(cache_result="hit", period_start="2026-11-28 14:00:00.000", events=4),
        stats_row(version="7", cache_result="hit", period_start="yesterday", events=4),
        stats_row(version="7", cache_result="miss", period_start="2026-11-28 14:10:00.000", events="lots"),
        stats_row(version="7", cache_result="hit", period_start="2026-11-28 14:10:00.000", events=2),
    ]

    with caplog.at_level(logging.WARNING, logger="bot.aws.cache_logs"):
        parsed = parse_cache_rows(window(), rows)

    assert parsed == {("7", T0 + 2 * FIVE_MIN): CacheCounts(hits=2, misses=0)}
    assert caplog.text.count("unreadable cache stats row") == 3


@pytest.mark.parametrize(
    ("seconds", "label"), [(60, "1m"), (300, "5m"), (3600, "1h"), (7200, "2h"), (90, "90s")]
)
def test_period_label_is_a_bin_width(seconds: int, label: str) -> None:
    assert period_label(seconds) == label


def _pattern(name: str) -> re.Pattern[str]:
    """A named-group regex of the default query, in Python's spelling of named groups."""
    found = re.search(r"/([^/]*\(\?<" + name + r">[^/]*)/", DEFAULT_CACHE_QUERY)
    assert found, name
    return re.compile(found.group(1).replace("(?<", "(?P<"))


@pytest.mark.parametrize(
    ("stream", "version"),
    [
        ("2026/11/28/[7]8f3c2a9be0d14e5f", "7"),
        ("2026/11/28/[$LATEST]0c1d2e3f", "$LATEST"),
        ("2026/11/28/[12]ab", "12"),
    ],
)
def test_default_query_reads_the_version_from_the_lambda_stream_name(stream: str, version: str) -> None:
    match = _pattern("version").search(stream)

    assert match and match.group("version") == version


@pytest.mark.parametrize(
    ("message", "result", "latency"),
    [
        ("INFO Redis cache hit key=set:75192", "hit", None),
        ("WARN Redis cache miss key=set:75192 latency=212ms", "miss", "212"),
        ('{"level":"info","msg":"Redis cache miss","latencyMs":187.5}', "miss", "187.5"),
        ("Redis cache miss (db fallback) Latency: 95 ms", "miss", "95"),
        ("Redis cache miss latency_ms=40", "miss", "40"),
    ],
)
def test_default_query_reads_result_and_latency_from_the_seed_log_lines(
    message: str, result: str, latency: str | None
) -> None:
    outcome = _pattern("cache_result").search(message)
    measured = _pattern("latency_ms").search(message)

    assert outcome and outcome.group("cache_result") == result
    assert (measured.group("latency_ms") if measured else None) == latency
