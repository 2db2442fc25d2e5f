"""The load generator of `bench.peers`: Locust (a maintained load-testing tool from PyPI, the `bench` extra) run
as a library in a process of its own, so its client work never shares an interpreter with a server it measures.

Run as `python bench/loadgen.py`; it reads one JSON plan on stdin, a list of runs:

    [{"port": 8001, "text": "help", "requests": 600, "users": 200, "response_url": "http://…"}, …]

and prints one JSON line per run: {"latencies_ms": [...], "outcomes": {"200": 598, "timeout": 2}, "wall_s": …}.
Each run is closed-loop: `users` Locust users (one keep-alive connection each) send signed `/canary <text>`
slash commands back to back, each freshly signed with a trigger_id of its own (the bot acts on an identical
request once), until `requests` were sent. A request not answered within Slack's 3 s counts as "timeout".
Everything goes to 127.0.0.1 only, bounded in count and time.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from locust import FastHttpUser, constant, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.exception import StopUser  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for canary_demo
from canary_demo import slack_requests as req  # noqa: E402

SLACK_DEADLINE_S = 3.0
SLACK_PATH = "/slack/events"
RUN_LIMIT_S = 120.0  # a run that has not finished by then is cut short (and its missing requests reported)
_TRIGGERS = itertools.count(1)


def _failure(error: object) -> str:
    text = str(error).lower()
    return "timeout" if "timed out" in text or "timeout" in text else type(error).__name__


def run_one(plan: dict[str, Any]) -> dict[str, Any]:
    total = int(plan["requests"])
    issued = itertools.count()
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    class SlackUser(FastHttpUser):
        host = f"http://127.0.0.1:{int(plan['port'])}"
        wait_time = constant(0)
        network_timeout = SLACK_DEADLINE_S
        connection_timeout = SLACK_DEADLINE_S
        max_retries = 0

        def on_stop(self) -> None:
            # Close the keep-alive connection now: a server with a connection limit (waitress: 200) would
            # otherwise count it against the next run until its idle timeout.
            self.client.client.close()

        @task
        def command(self) -> None:
            if next(issued) >= total:
                raise StopUser()
            signed = req.slash_command(
                text=plan["text"],
                response_url=plan["response_url"],
                trigger_id=f"{next(_TRIGGERS)}.{time.time_ns()}.load",
            )
            started = time.perf_counter()
            try:
                answer = self.client.post(SLACK_PATH, data=signed.body, headers=dict(signed.headers))
                outcome = str(answer.status_code) if answer.status_code else _failure(answer.error)
            except Exception as exc:  # a refused or reset connection: counted, never fatal
                outcome = _failure(exc)
            elapsed = time.perf_counter() - started
            if elapsed > SLACK_DEADLINE_S and outcome == "200":
                outcome = "late"
            latencies.append(elapsed * 1000.0)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    env = Environment(user_classes=[SlackUser])
    runner = env.create_local_runner()
    users = min(int(plan["users"]), total)
    began = time.perf_counter()
    runner.start(users, spawn_rate=users * 1000.0)  # all at once: the connections arrive together
    deadline = began + RUN_LIMIT_S
    while len(latencies) < total and time.perf_counter() < deadline:
        gevent.sleep(0.01)
    wall = time.perf_counter() - began
    runner.quit()  # stops the users: on_stop closes their connections
    gevent.sleep(0.2)
    missing = total - len(latencies)
    if missing > 0:
        outcomes["not sent in time"] = missing
    return {"latencies_ms": latencies, "outcomes": outcomes, "wall_s": wall}


def main() -> None:
    plans = json.loads(sys.stdin.read())
    for plan in plans:
        print(json.dumps(run_one(plan)), flush=True)


if __name__ == "__main__":
    main()
