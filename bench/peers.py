"""The bot as it runs in production, against its peers: the real `canary-bot serve` (the Dockerfile's CMD) in a
process of its own, beside the bare Bolt app on the same server and on Bolt's recommended stack.

The world: a moto server seeded with the seed's function and CANARIES more, each with a live canary started
through CanaryService on LambdaTraffic + CloudWatchAlarms (a SQLite file store, as in the image); Slack's Web
API is canary_demo's FakeSlack and every response_url is bench.response_sink, each in a process of its own.

1. Process start → /healthz ready: `canary-bot serve` until GET /healthz answers 200, beside the bare Bolt app
   on waitress (bench/peer_servers.py bare-waitress) started the same way; median of `starts`, alternated.
   Target ≤ 2 s.
2. Acks under load: Locust (bench/loadgen.py, its own process) sends `/canary help`, `status` and
   `start production-lego-api 2`, each signed, at `concurrency` users (closed loop, one keep-alive connection
   each), `requests` of each; the same load goes to the bare Bolt app on the same waitress server and to the
   bare Bolt app on its Flask adapter under gunicorn (gthread, one worker of 8 threads, as ours), alternated
   run by run. Targets: no request past Slack's 3 s; p99 ≤ 1.3× the bare app on the same server for help and
   status; p99 < 500 ms for start, which changes state (its work runs after the ack); every answer delivered.
3. Resident memory: the serve process's peak RSS (VmHWM) after all of the above, with CANARIES live canaries,
   beside the bare Bolt app's after the same load. Target ≤ 200 MB.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml

from bench.harness import Check, median, percentile
from bench.response_sink import ResponseSink
from bot.actors import cli_actor
from bot.aws.alarms import CloudWatchAlarms
from bot.aws.traffic import LambdaTraffic
from bot.clock import SystemClock
from bot.config import EMBEDDED_POLICY, load_policy
from bot.events import RecordingNotifier
from bot.service import CanaryService
from bot.store import SqliteStore
from bot.verbs import StartArgs
from canary_demo import slack_requests as req
from canary_demo.moto_server import running_moto
from canary_demo.seed import LEGO_API, seed_lego_api

REGION = "us-east-1"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
VERBS = ("help", "status", f"start {LEGO_API} 2")
CONCURRENCY = (50, 200)
CANARIES = 100
SLACK_DEADLINE_MS = 3000.0
MAX_ACK_RATIO = 1.3  # help, status: p99 against the bare Bolt app on the same server
STATE_CHANGE_P99_MS = 500.0
READY_CEILING_S = 2.0
RSS_CEILING_MB = 200.0
BOT_TOKEN = "xoxb-bench"
WARM_UP = 20  # requests to each server before the measured runs
_SERVER_THREADS = 8  # bot.http_server.serve's default, given to gunicorn too


def run(
    *,
    canaries: int = CANARIES,
    concurrency: Sequence[int] = CONCURRENCY,
    requests: int | None = None,
    starts: int = 3,
) -> list[Check]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="canary-bench-peers-")))
        endpoint = stack.enter_context(running_moto())
        slack_api = stack.enter_context(
            _child([sys.executable, str(HERE / "peer_servers.py"), "fake-slack", "0"])
        )
        assert slack_api.stdout is not None
        api_url = slack_api.stdout.readline().strip()
        env = _serve_env(prepare_world(tmp, endpoint, canaries), endpoint, api_url)
        ready = startup_check(env, tmp, starts=starts)
        sink = stack.enter_context(ResponseSink())
        ours = stack.enter_context(_server("ours", env, tmp))
        bare = stack.enter_context(_server("bare-waitress", env, tmp))
        stack_baseline = stack.enter_context(_server("bare-gunicorn", env, tmp))
        servers = {"ours": ours, "bare": bare, "gunicorn": stack_baseline}
        loads = measure_loads(servers, sink, concurrency=concurrency, requests=requests)
        expected = sum(r.ok for (who, _, _), r in loads.items() if who == "ours")
        delivered = sink.wait_for(expected, timeout=60.0)
        memory = memory_check(ours, bare, canaries)
    return [ready, *ack_checks(loads, concurrency, delivered=delivered, expected=expected), memory]


# ---------------------------------------------------------------- the world
def prepare_world(tmp: Path, endpoint: str, canaries: int) -> dict[str, str]:
    """Seed moto, write the policy, start `canaries` canaries into a SQLite file; the settings serve needs."""
    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
    lam = session.client("lambda", endpoint_url=endpoint)
    iam = session.client("iam", endpoint_url=endpoint)
    seed_lego_api(lam, iam)
    names = [f"bench-fn-{i:03d}" for i in range(canaries)]
    for name in names:
        seed_lego_api(lam, iam, function=name)
    policy_file = tmp / "policy.yaml"
    functions = dict(EMBEDDED_POLICY["functions"])
    functions.update({name: {"alias": "production", "channel": "#deploys", "soak": "2h"} for name in names})
    policy_file.write_text(yaml.safe_dump({"defaults": {}, "functions": functions}))
    db = tmp / "canary-bot.db"
    store = SqliteStore(db)
    try:
        service = CanaryService(
            traffic=LambdaTraffic(lam),
            store=store,
            policy=load_policy(policy_file),
            clock=SystemClock(),
            notifier=RecordingNotifier(),
            alarms=CloudWatchAlarms(session.client("cloudwatch", endpoint_url=endpoint), REGION),
        )
        actor = cli_actor("bench")
        for name in names:
            plan = service.plan(StartArgs(function=name, version="2"), actor)
            service.confirm(plan.deployment.id, actor)
        live = len(store.list_live())
    finally:
        store.close()
    if live != canaries:
        raise RuntimeError(f"expected {canaries} live canaries, the store holds {live}")
    return {"CANARY_STORE_URL": f"sqlite:///{db}", "CANARY_POLICY_FILE": str(policy_file)}


def _serve_env(world: dict[str, str], endpoint: str, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CANARY_", "AWS_"))}
    env.update(world)
    env.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": req.SIGNING_SECRET,
            "SLACK_API_URL": api_url,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": REGION,
            "PYTHONPATH": str(HERE.parent),
        }
    )
    return env


# ---------------------------------------------------------------- processes
@contextmanager
def _child(
    args: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A child process of ours, always stopped (by its own handle) on leaving."""
    with ExitStack() as files:
        err = files.enter_context(log.open("a")) if log is not None else subprocess.DEVNULL
        process = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=HERE.parent,
        )
        try:
            yield process
        finally:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    port: int
    process: subprocess.Popen[str]
    ready_s: float


def _command(kind: str, port: int) -> list[str]:
    if kind == "ours":
        return [str(BIN / "canary-bot"), "serve"]
    if kind == "bare-waitress":
        return [sys.executable, str(HERE / "peer_servers.py"), "bare-waitress", str(port)]
    if kind == "bare-gunicorn":
        return [
            str(BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            str(_SERVER_THREADS),
            "--log-level",
            "warning",
            "bench.peer_servers:flask_app",
        ]
    raise ValueError(kind)


@contextmanager
def _server(kind: str, env: dict[str, str], tmp: Path) -> Iterator[Server]:
    port = _free_port()
    began = time.perf_counter()
    with _child(_command(kind, port), {**env, "PORT": str(port)}, tmp / f"{kind}.log") as process:
        ready = _wait_ready(port, process, began, tmp / f"{kind}.log")
        yield Server(kind, port, process, ready)


def _wait_ready(port: int, process: subprocess.Popen[str], began: float, log: Path) -> float:
    deadline = began + 60.0
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return time.perf_counter() - began
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"/healthz not ready within 60 s: {log.read_text()[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- 1. start → ready
def startup_check(env: dict[str, str], tmp: Path, *, starts: int) -> Check:
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(starts):
        with _server("bare-waitress", env, tmp) as server:
            bare.append(server.ready_s)
        with _server("ours", env, tmp) as server:
            ours.append(server.ready_s)
    return Check(
        name="process start → /healthz ready",
        ours=median(ours),
        baseline=median(bare),
        unit="s",
        target=f"≤ {READY_CEILING_S:g} s",
        passed=median(ours) <= READY_CEILING_S,
        note=f"`canary-bot serve` vs the bare Bolt app on waitress, median of {starts}; worst {max(ours):.2f} s",
    )


# ---------------------------------------------------------------- 2. acks under load
@dataclass(frozen=True, slots=True)
class Load:
    latencies_ms: tuple[float, ...]
    outcomes: dict[str, int]
    wall_s: float

    @property
    def ok(self) -> int:
        return self.outcomes.get("200", 0)

    @property
    def past_deadline(self) -> int:
        """Requests not answered within Slack's 3 s (a timeout's latency is the 3 s it waited)."""
        late = sum(1 for latency in self.latencies_ms if latency > SLACK_DEADLINE_MS)
        return late + self.outcomes.get("not sent in time", 0)

    def p(self, rank: float) -> float:
        return percentile(self.latencies_ms, rank)


LoadKey = tuple[str, int, str]  # (server, concurrency, verb)


def measure_loads(
    servers: dict[str, Server], sink: ResponseSink, *, concurrency: Sequence[int], requests: int | None
) -> dict[LoadKey, Load]:
    plans: list[dict[str, Any]] = []
    keys: list[LoadKey] = []
    for name, server in servers.items():  # warm-up (concurrency 0 in the keys): first connections, caches
        plans.append(_plan(server, "help", WARM_UP, min(WARM_UP, max(concurrency)), sink))
        keys.append((name, 0, "help"))
    for users in concurrency:
        count = requests or max(300, 3 * users)
        for verb in VERBS:
            for name in ("bare", "ours", "gunicorn"):  # alternated: noise falls on all of them alike
                plans.append(_plan(servers[name], verb, count, users, sink))
                keys.append((name, users, verb))
    with _child([sys.executable, str(HERE / "loadgen.py")]) as gen:
        assert gen.stdin is not None and gen.stdout is not None
        gen.stdin.write(json.dumps(plans))
        gen.stdin.close()
        results = [json.loads(line) for line in gen.stdout]
    if len(results) != len(plans):
        raise RuntimeError(f"the load generator finished {len(results)} of {len(plans)} runs")
    return {
        key: Load(tuple(r["latencies_ms"]), dict(r["outcomes"]), float(r["wall_s"]))
        for key, r in zip(keys, results, strict=True)
    }


def _plan(server: Server, verb: str, count: int, users: int, sink: ResponseSink) -> dict[str, Any]:
    return {
        "port": server.port,
        "text": verb,
        "requests": count,
        "users": users,
        "response_url": sink.url(server.name),
    }


def ack_checks(
    loads: dict[LoadKey, Load], concurrency: Sequence[int], *, delivered: int, expected: int
) -> list[Check]:
    checks: list[Check] = []
    for users in concurrency:
        for verb in VERBS:
            ours, bare, stack = (loads[(who, users, verb)] for who in ("ours", "bare", "gunicorn"))
            changes_state = verb.startswith("start")
            clean = ours.past_deadline == 0 and ours.ok == len(ours.latencies_ms)
            if changes_state:
                target = f"< {STATE_CHANGE_P99_MS:g} ms, none past 3 s"
                passed = clean and ours.p(99) < STATE_CHANGE_P99_MS
            else:
                target = f"≤ {MAX_ACK_RATIO:g}×, none past 3 s"
                passed = clean and ours.p(99) <= MAX_ACK_RATIO * bare.p(99)
            outcomes = "" if clean else f"; outcomes {ours.outcomes}"
            checks.append(
                Check(
                    name=f"ack /canary {verb.split()[0]}, {users} concurrent: p99",
                    ours=ours.p(99),
                    baseline=bare.p(99),
                    unit="ms",
                    target=target,
                    passed=passed,
                    note=(
                        f"p50 {ours.p(50):.1f} vs {bare.p(50):.1f} ms; Flask+gunicorn p50/p99 "
                        f"{stack.p(50):.1f}/{stack.p(99):.1f} ms; {len(ours.latencies_ms)} requests, "
                        f"{len(ours.latencies_ms) / ours.wall_s:.0f} vs {len(bare.latencies_ms) / bare.wall_s:.0f} "
                        f"req/s{outcomes}"
                    ),
                )
            )
        bare, stack = loads[("bare", users, "help")], loads[("gunicorn", users, "help")]
        checks.append(
            Check(
                name=f"bare Bolt, {users} concurrent: our server vs Flask+gunicorn, p99",
                ours=bare.p(99),
                baseline=stack.p(99),
                unit="ms",
                target=f"≤ {MAX_ACK_RATIO:g}×",
                passed=bare.p(99) <= MAX_ACK_RATIO * stack.p(99) and bare.past_deadline == 0,
                note="the server the Dockerfile runs (waitress, 8 threads) against Bolt's recommended stack",
            )
        )
    checks.append(
        Check(
            name="answers delivered to response_url",
            ours=delivered,
            baseline=expected,
            unit="calls",
            target="every acked command answered",
            passed=delivered >= expected,
            note="POSTs the response_url receiver counted, against the commands ours acked",
        )
    )
    return checks


# ---------------------------------------------------------------- 3. memory
def memory_check(ours: Server, bare: Server, canaries: int) -> Check:
    ours_mb, bare_mb = _peak_rss_mb(ours.process.pid), _peak_rss_mb(bare.process.pid)
    return Check(
        name=f"resident memory, {canaries} live canaries",
        ours=ours_mb,
        baseline=bare_mb,
        unit="MB",
        target=f"≤ {RSS_CEILING_MB:g} MB",
        passed=ours_mb <= RSS_CEILING_MB,
        note="peak RSS (VmHWM) of `canary-bot serve` after the load, beside the bare Bolt app's",
    )


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for process {pid}")


__all__ = ["run"]
