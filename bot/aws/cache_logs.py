"""Cache hit/miss counts and miss latency per version and period, from the function's logs (Logs Insights).

The seed's application logs one line per cache lookup ("Redis cache hit" / "Redis cache miss", optionally
with a latency). Lambda writes each version's logs to streams named `YYYY/MM/DD/[<version>]<instance id>`
(`[$LATEST]` for the unpublished code), so the version comes from the stream name.

Logs Insights is slow and limited (30 concurrent queries per account), and cache figures only refine the
verdict: a query that fails, is cancelled or outlives our timeout leaves that deployment's cache figures
missing, with a warning. It never fails the tick.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws.metrics import CacheCounts, CacheFigures, period_count, period_index, period_starts, window_end
from bot.ports import WindowRequest

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import ResultFieldTypeDef

__all__ = [
    "CACHE_HIT_LINE",
    "CACHE_MISS_LINE",
    "DEFAULT_CACHE_QUERY",
    "CacheCounts",
    "LogsInsightsCache",
    "parse_cache_rows",
    "period_label",
    "query_for",
]

log = logging.getLogger(__name__)

# The seed's log lines, one per cache lookup (the cache alarm's metric filters count the same phrases).
CACHE_HIT_LINE = "Redis cache hit"
CACHE_MISS_LINE = "Redis cache miss"

# One query gives both figures: grouping by the lookup's result makes the miss row's percentile the
# cache-miss latency, so no conditional aggregation is needed.
# `{period}` becomes the bin width ("5m"). The latency pattern accepts `latency=12`, `Latency: 12.5`,
# `latency_ms=12` and JSON's `"latencyMs":12`.
DEFAULT_CACHE_QUERY = r"""fields @timestamp, @message, @logStream
| filter @message like /Redis cache (hit|miss)/
| parse @logStream /\[(?<version>[^\]]+)\]/
| parse @message /Redis cache (?<cache_result>hit|miss)/
| parse @message /[Ll]atency\w*"?\s*[=:]\s*(?<latency_ms>\d+\.?\d*)/
| stats count(*) as events, pct(latency_ms, 95) as latency_p95_ms
    by version, cache_result, bin({period}) as period_start"""

# Logs Insights answers with these timestamps for bin() (UTC, no zone).
BIN_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
PENDING_STATUSES = frozenset({"Scheduled", "Running", "Unknown"})
ACCOUNT_CONCURRENT_QUERY_LIMIT = 30


def period_label(seconds: int) -> str:
    """A bin() width: 300 -> '5m', 3600 -> '1h', 90 -> '90s'."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def query_for(request: WindowRequest, default: str = DEFAULT_CACHE_QUERY) -> str:
    # str.replace, not str.format: regexes in a query carry braces of their own ({2,3}).
    return (request.cache_query or default).replace("{period}", period_label(request.period_seconds))


# ---------------------------------------------------------------- result rows
@dataclass
class _Tally:
    hits: int = 0
    misses: int = 0
    miss_p95_ms: float | None = None

    def freeze(self) -> CacheCounts:
        return CacheCounts(hits=self.hits, misses=self.misses, miss_p95_ms=self.miss_p95_ms)


def parse_cache_rows(
    request: WindowRequest, rows: Sequence[Sequence[ResultFieldTypeDef]]
) -> dict[tuple[str, datetime], CacheCounts]:
    """Turn stats rows into counts keyed by (version, period start).

    Rows carry `version`, the bin (`period_start`, or the unnamed `bin(...)` field), and either
    `cache_result` ('hit'/'miss') + `events` (+ `latency_p95_ms` on miss rows) — the default query — or
    `hits` + `misses` (+ `miss_p95_ms`), for custom queries that count both in one row. Rows outside the
    window's whole periods, or that cannot be read, are skipped.
    """
    starts = period_starts(request)
    tallies: dict[tuple[str, datetime], _Tally] = {}
    for raw in rows:
        row = {f["field"]: f["value"] for f in raw if "field" in f and "value" in f}
        try:
            version = row["version"]
            slot = period_index(request, _bin_start(row))
        except (KeyError, ValueError) as error:
            log.warning("unreadable cache stats row %s: %s", row, error)
            continue
        if slot is None:
            continue
        tally = tallies.setdefault((version, starts[slot]), _Tally())
        try:
            _add(tally, row)
        except ValueError as error:
            log.warning("unreadable cache stats row %s: %s", row, error)
    return {key: tally.freeze() for key, tally in tallies.items()}


def _bin_start(row: Mapping[str, str]) -> datetime:
    text = row.get("period_start") or next((v for k, v in row.items() if k.startswith("bin(")), None)
    if text is None:
        raise KeyError("no bin field")
    return datetime.strptime(text, BIN_FORMAT).replace(tzinfo=UTC)


def _add(tally: _Tally, row: Mapping[str, str]) -> None:
    if "cache_result" in row:
        events = _count(row.get("events"))
        if row["cache_result"] == "hit":
            tally.hits += events
        elif row["cache_result"] == "miss":
            tally.misses += events
            tally.miss_p95_ms = _number(row.get("latency_p95_ms"))
        return
    tally.hits += _count(row.get("hits"))
    tally.misses += _count(row.get("misses"))
    tally.miss_p95_ms = _number(row.get("miss_p95_ms"))


def _count(text: str | None) -> int:
    return round(float(text)) if text else 0


def _number(text: str | None) -> float | None:
    return float(text) if text else None


# ---------------------------------------------------------------- the source
@dataclass
class _Running:
    request: WindowRequest
    started_at: float


class LogsInsightsCache:
    """CacheFiguresSource over Logs Insights: one query per request, at most `max_concurrent` in flight."""

    def __init__(
        self,
        logs: CloudWatchLogsClient,
        *,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        timeout_seconds: float = 60.0,
        max_concurrent: int = 20,
        poll_interval_seconds: float = 1.0,
        default_query: str = DEFAULT_CACHE_QUERY,
    ) -> None:
        # Leave room under the account's limit for people and other tools running queries.
        if not 1 <= max_concurrent < ACCOUNT_CONCURRENT_QUERY_LIMIT:
            raise ValueError(f"max_concurrent must be in [1, {ACCOUNT_CONCURRENT_QUERY_LIMIT})")
        self._logs = logs
        self._sleep = sleep
        self._monotonic = monotonic
        self._timeout = timeout_seconds
        self._max_concurrent = max_concurrent
        self._poll_interval = poll_interval_seconds
        self._default_query = default_query

    def fetch(self, requests: Sequence[WindowRequest]) -> CacheFigures:
        """Per deployment id, counts by (version, period start). Deployments whose query did not complete are
        absent; a version or period without cache log lines is absent from its deployment's mapping."""
        queue = deque(r for r in requests if r.log_group and period_count(r) > 0)
        running: dict[str, _Running] = {}
        figures: CacheFigures = {}
        while queue or running:
            self._start_queued(queue, running)
            if not running:
                break
            self._sleep(self._poll_interval)  # no query answers at once; poll after a pause
            for query_id, run in list(running.items()):
                if self._poll(query_id, run, figures):
                    del running[query_id]
        return figures

    def _start_queued(self, queue: deque[WindowRequest], running: dict[str, _Running]) -> None:
        while queue and len(running) < self._max_concurrent:
            request = queue.popleft()
            assert request.log_group  # filtered in fetch
            try:
                answer = self._logs.start_query(
                    logGroupName=request.log_group,
                    startTime=int(request.start.timestamp()),
                    endTime=int(window_end(request).timestamp()),
                    queryString=query_for(request, self._default_query),
                )
            except ClientError as error:
                if _code(error) == "LimitExceededException" and running:
                    # Others hold the account's query slots; one of ours will free a slot soon.
                    queue.appendleft(request)
                    return
                log.warning(
                    "cache figures missing for %s: start_query failed: %s", request.deployment_id, error
                )
                continue
            except BotoCoreError as error:
                log.warning(
                    "cache figures missing for %s: start_query failed: %s", request.deployment_id, error
                )
                continue
            running[answer["queryId"]] = _Running(request, self._monotonic())

    def _poll(self, query_id: str, run: _Running, figures: CacheFigures) -> bool:
        """Check one query; True when it is finished with (complete, failed or given up)."""
        deployment = run.request.deployment_id
        try:
            answer = self._logs.get_query_results(queryId=query_id)
        except (ClientError, BotoCoreError) as error:
            log.warning("cache figures missing for %s: get_query_results failed: %s", deployment, error)
            self._stop(query_id)
            return True
        status = answer.get("status", "Unknown")
        if status == "Complete":
            figures[deployment] = parse_cache_rows(run.request, answer.get("results", []))
            return True
        if status not in PENDING_STATUSES:
            log.warning(
                "cache figures missing for %s: Logs Insights query %s ended %s", deployment, query_id, status
            )
            return True
        if self._monotonic() - run.started_at >= self._timeout:
            log.warning(
                "cache figures missing for %s: Logs Insights query %s still %s after %.0fs; stopped",
                deployment,
                query_id,
                status,
                self._timeout,
            )
            self._stop(query_id)
            return True
        return False

    def _stop(self, query_id: str) -> None:
        # Frees the account's query slot; a query that already ended refuses, which is fine.
        try:
            self._logs.stop_query(queryId=query_id)
        except (ClientError, BotoCoreError) as error:
            log.info("stop_query %s: %s", query_id, error)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
