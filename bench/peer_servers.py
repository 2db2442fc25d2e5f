"""The processes `bench.peers` measures and talks to, each run as `python bench/peer_servers.py KIND PORT`:

bare-waitress  the bare Bolt app (verify the signature, ack; bench.ack.bare_bolt_app) behind the bot's own router
               on the bot's own server: `bot.http_server.serve`, waitress with serve()'s 8 threads and settings,
               the server the Dockerfile's `canary-bot serve` runs. Same stack as ours, no work of ours.
fake-slack     Slack's Web API for the bot under test (canary_demo.fake_slack.FakeSlack), out of the bot's
               process; prints its base URL, serves until stdin closes.

and, for Bolt's recommended production stack (its Flask adapter under gunicorn, as bolt-python's Flask
examples deploy it), `gunicorn bench.peer_servers:flask_app`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run by path: the repository's packages

from slack_bolt import Ack, App
from slack_sdk import WebClient

from canary_demo import slack_requests as req

BOT_TOKEN = "xoxb-bench"


def bare_bolt_app() -> App:
    """The least a Bolt app can do for /canary: verify the signature and ack (Bolt's defaults otherwise)."""
    app = App(
        # auth.test once, on the first request (Bolt's default authorization), to the benchmark's fake Slack
        client=WebClient(BOT_TOKEN, base_url=os.environ.get("SLACK_API_URL") or WebClient.BASE_URL),
        signing_secret=req.SIGNING_SECRET,
        request_verification_enabled=True,
        token_verification_enabled=False,
    )

    @app.command("/canary")
    def ack_only(ack: Ack) -> None:
        ack()

    return app


def _flask_app() -> Any:
    from flask import Flask, request
    from slack_bolt.adapter.flask import SlackRequestHandler

    handler = SlackRequestHandler(bare_bolt_app())
    flask = Flask("bare-bolt")

    @flask.route("/slack/events", methods=["POST"])
    def slack_events() -> Any:
        return handler.handle(request)

    @flask.route("/healthz", methods=["GET"])
    def healthz() -> Any:
        return {"status": "ok"}

    return flask


def __getattr__(name: str) -> Any:  # `gunicorn bench.peer_servers:flask_app` builds it on first access
    if name == "flask_app":
        return _flask_app()
    raise AttributeError(name)


def main(kind: str, port: int) -> None:
    if kind == "bare-waitress":
        from bot.http_server import make_wsgi_app, serve

        wsgi = make_wsgi_app(bare_bolt_app(), sns_handler=None, health=lambda: (True, {}))
        serve(wsgi, port=port, host="127.0.0.1")
    elif kind == "fake-slack":
        from canary_demo.fake_slack import FakeSlack

        with FakeSlack(usergroups={"S0SREONCALL": [req.USER_ID]}) as slack:
            print(slack.base_url, flush=True)
            sys.stdin.read()  # until the parent closes it
    else:
        raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
