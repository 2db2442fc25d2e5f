"""create_app: the Bolt app with every listener of commands/ and handlers/ registered.

Every listener is split Bolt's "lazy" way: an ack function that runs on the request's own thread and answers
Slack at once (no AWS call, no Web API call), and the work, handed to an executor. A pool of slow answers
(Slack or AWS taking seconds) can then never delay another user's ack past Slack's 3 s.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.config import Settings
from bot.outbox import Outbox
from bot.ports import Clock, StorePort
from bot.service import CanaryService
from bot.soak import SoakRunner
from commands.base import Deps
from handlers import actions, fallback, home, modals, replays, slash

T = TypeVar("T")
LISTENER_THREADS = 16


class InlineExecutor(Executor):
    """Runs the work at once, on the caller's thread: tests and the demo see its effects when dispatch returns."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def offline_authorize(token: str) -> Callable[..., AuthorizeResult]:
    """Bolt's authorize step without a Web API call: a single-workspace app knows its own bot token.

    (Bolt's default asks auth.test on the first request and again after every failure, so a bot restarted
    while Slack's Web API is down refuses every request — rollback clicks included.)
    """

    def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    return authorize


def create_app(
    settings: Settings,
    service: CanaryService,
    client: WebClient,
    *,
    store: StorePort,
    clock: Clock,
    inline: bool = False,
    soak: SoakRunner | None = None,
    outbox: Outbox | None = None,
) -> App:
    """Request signature verification stays on (Bolt checks it in HTTP mode; Socket Mode has no signatures).

    inline=True runs the work before dispatch returns (tests, the demo); otherwise on a thread pool.
    """
    executor: Executor = (
        InlineExecutor() if inline else ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="canary-work")
    )
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=True,
        # No auth.test, at start-up or on a request: a Slack outage must not turn away a rollback click.
        authorize=offline_authorize(settings.slack_bot_token or client.token or ""),
        process_before_response=True,  # the ack functions answer on the request thread; work is lazy
        listener_executor=executor,
    )
    deps = Deps(service=service, clock=clock, store=store, soak=soak, outbox=outbox)
    board = home.HomeBoard(client, deps, background=not inline)
    # Every change the service announces also re-publishes the App Homes people have open.
    service.announcer.observe(board.on_announced)
    # replays first (a middleware: runs before every listener); fallback last (what no other listener takes)
    replays.register(app, deps)
    slash.register(app, deps)
    actions.register(app, deps, board)
    modals.register(app, deps, board)
    home.register(app, board)
    fallback.register(app, deps)
    return app
