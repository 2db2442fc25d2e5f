"""The benchmarks run end to end at tiny sizes, and the runner reports and exits as documented.

No timing is asserted here (timings belong to `make bench`, against baselines); the counts that do not depend
on the machine are.
"""

from __future__ import annotations

import math

import pytest

import bench.__main__ as runner
from bench import ack, alarm, judge, metrics_calls, peers, store, store_dynamo, tick
from bench.harness import Check, format_table, percentile


def _by_name(checks: list[Check]) -> dict[str, Check]:
    names = [c.name for c in checks]
    assert len(set(names)) == len(names), names
    return {c.name: c for c in checks}


def _all_measured(checks: list[Check]) -> None:
    for check in checks:
        assert math.isfinite(check.ours) and check.ours >= 0, check
        assert check.baseline is None or (math.isfinite(check.baseline) and check.baseline >= 0), check


def test_alarm_benchmark_rolls_back_every_trial_over_a_moto_server() -> None:
    checks = alarm.run(trials=2)  # raises when a trial does not end rolled back
    _all_measured(checks)
    assert [c.name.split(" → ")[0] for c in checks] == ["alarm by SQS"] * 2 + ["alarm by SNS HTTPS"] * 2
    assert [c.unit for c in checks] == ["ms"] * 4


def test_ack_benchmark_acks_through_the_real_app_and_serves_every_request_over_http() -> None:
    checks = ack.run(repeats=2, requests=5, clients=2, rounds=1, stuck=2)

    _all_measured(checks)
    by_name = _by_name(checks)
    assert {"ack /canary help", "ack /canary start …", "ack /canary help, 2 answers hanging"} <= set(by_name)
    # Two stuck answers leave Bolt's listener pool room: the probe is acked and everything answered.
    assert by_name["ack /canary help, 2 answers hanging"].note.startswith("acked; 2/2")
    [throughput] = [c for c in checks if c.unit == "req/s"]
    assert throughput.note.endswith("all 200, all answered")


def test_tick_benchmark_judges_every_canary_with_one_metrics_fetch_per_tick() -> None:
    checks = tick.run(sizes=(1, 3), repeats=2)

    _all_measured(checks)
    by_name = _by_name(checks)
    assert {"tick, 1 canary: judge+decide", "tick, 3 canaries: judge+decide", "tick, 3 vs 1 canary"} <= set(
        by_name
    )
    fetches = by_name["metric fetches per tick, 3 canaries"]
    assert (fetches.ours, fetches.baseline, fetches.passed) == (1, 3, True)


@pytest.mark.parametrize(("canaries", "calls"), [(1, 1), (41, 1), (42, 2), (84, 3)])
def test_metrics_plan_uses_one_get_metric_data_call_per_500_queries(canaries: int, calls: int) -> None:
    [check] = metrics_calls.run(sizes=(canaries,))

    assert check.ours == calls
    assert check.baseline == canaries * 12  # the naive plan: one call per metric per version
    assert check.passed, check.note


def test_store_benchmark_writes_and_loads_history() -> None:
    checks = store.run(audits=6, saves=3, repeats=1)

    _all_measured(checks)
    [writes, memory] = checks
    assert writes.name == "store: 6 audits + 3 saves"
    assert memory.note.startswith("tracemalloc; 3 deployments loaded")
    assert memory.unit == "MiB" and memory.ours < 20


def test_judge_benchmark_soaks_through_the_real_loop_with_both_rules() -> None:
    cases = [c for c in judge.CASES if c.name in ("healthy 0.2×", "errors 10×")]
    checks = judge.run(soaks=3, cases=cases)

    by_name = _by_name(checks)
    assert set(by_name) == {
        "judge, healthy 0.2×: rolled back",
        "judge, healthy 0.2×: passed",
        "judge, errors 10×: rolled back ≤ 10 min",
        "judge, errors 10×: median minutes to rollback",
    }
    # 1% errors at ~1,000 canary invocations a period: one period proves it; the plain rule needs two.
    fast = by_name["judge, errors 10×: median minutes to rollback"]
    assert (fast.ours, fast.baseline) == (5.0, 10.0)
    assert by_name["judge, errors 10×: rolled back ≤ 10 min"].ours == 100.0
    assert "threshold rule:" in by_name["judge, healthy 0.2×: rolled back"].note


# ---------------------------------------------------------------- the runner
def _stub(*checks: Check) -> dict[str, object]:
    return {"fast": lambda: list(checks)}


def test_runner_exits_1_and_names_every_missed_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    met = Check("met", ours=1.0, baseline=2.0, unit="ms", target="≤ 3×", passed=True)
    missed = Check("missed", ours=9.0, baseline=1.0, unit="ms", target="≤ 3×", passed=False, note="too slow")
    monkeypatch.setattr(runner, "BENCHMARKS", _stub(met, missed))

    assert runner.main([]) == 1

    out = capsys.readouterr().out
    assert "🔴 1 of 2 targets missed" in out
    assert "- missed: wanted ≤ 3× (too slow)" in out
    assert "- met" not in out


def test_runner_exits_0_when_every_target_is_met(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "BENCHMARKS", _stub(Check("ok", 1.0, 1.0, "ms", "≤ 3×", True)))

    assert runner.main(["fast"]) == 0
    assert "✅ all 1 targets met" in capsys.readouterr().out


def test_a_crashing_benchmark_counts_as_a_missed_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> list[Check]:
        raise RuntimeError("world could not be built")

    monkeypatch.setattr(runner, "BENCHMARKS", {"broken": broken})

    assert runner.main([]) == 1
    assert "broken: crashed" in capsys.readouterr().out


def test_runner_refuses_an_unknown_benchmark_name() -> None:
    with pytest.raises(SystemExit) as exit_:
        runner.main(["nope"])
    assert exit_.value.code == 2


def test_table_shows_ratio_and_status_per_check() -> None:
    table = format_table(
        [
            Check("fast one", ours=2.0, baseline=1.0, unit="ms", target="≤ 3×", passed=True),
            Check("memory", ours=1.5, baseline=None, unit="MiB", target="≤ 20 MiB", passed=False),
        ]
    )
    header, _rule, fast, memory = table.splitlines()
    assert header.split()[:5] == ["benchmark", "ours", "baseline", "ratio", "target"]
    assert "2.00 ms" in fast and "1.00 ms" in fast and "2×" in fast and "✅" in fast
    assert "1.50 MiB" in memory and "—" in memory and "🔴" in memory


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 201)]
    assert percentile(values, 95) == 190.0
    assert percentile(values, 50) == 100.0
    assert math.isnan(percentile([], 95))


def test_store_dynamo_benchmark_counts_the_same_calls_per_canary_at_every_size() -> None:
    checks = store_dynamo.run(sizes=(1, 2, 4), repeats=1)

    _all_measured(checks)
    by_name = _by_name(checks)
    assert by_name["DynamoDB calls per tick, 4 vs 2 canaries"].passed
    one, two, four = (
        int(
            by_name[
                f"store tick, {n} canar{'y' if n == 1 else 'ies'}: DynamoDB (moto) vs SQLite"
            ].note.split()[0]
        )
        for n in (1, 2, 4)
    )
    # A steady tick: a few calls for the whole tick, then the same number for every canary.
    assert four - two == 2 * (two - one) > 0


def test_peers_benchmark_loads_the_real_serve_and_both_bare_bolt_stacks() -> None:
    checks = peers.run(canaries=2, concurrency=(3,), requests=6, starts=1)

    _all_measured(checks)
    by_name = _by_name(checks)
    assert {
        "process start → /healthz ready",
        "ack /canary help, 3 concurrent: p99",
        "ack /canary status, 3 concurrent: p99",
        "ack /canary start, 3 concurrent: p99",
        "bare Bolt, 3 concurrent: our server vs Flask+gunicorn, p99",
        "resident memory, 2 live canaries",
    } <= set(by_name)
    for verb in ("help", "status", "start"):
        # Every request of ours answered 200 within Slack's 3 s (anything else is listed in the note).
        assert "outcomes" not in by_name[f"ack /canary {verb}, 3 concurrent: p99"].note
    delivered = by_name["answers delivered to response_url"]
    assert delivered.passed and delivered.baseline == 3 * 6 + peers.WARM_UP  # the three verbs, the warm-up
