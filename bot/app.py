"""create_app: the Bolt app with every listener of commands/ and handlers/ registered."""

from __future__ import annotations

from slack_bolt import App
from slack_sdk import WebClient

from bot.config import Settings
from bot.service import CanaryService
from bot.soak import SoakRunner
from commands.base import Deps
from handlers import actions, home, modals, slash


def create_app(
    settings: Settings,
    service: CanaryService,
    client: WebClient,
    *,
    process_before_response: bool = False,
    soak: SoakRunner | None = None,
) -> App:
    """Request signature verification stays on (Bolt checks it in HTTP mode; Socket Mode has no signatures).

    process_before_response=True runs listeners before the HTTP response: for FaaS hosts and for tests.
    """
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=True,
        token_verification_enabled=False,  # auth.test at start-up would make tests and the demo call Slack
        process_before_response=process_before_response,
    )
    deps = Deps(service=service, clock=service.clock, soak=soak)
    for surface in (slash, actions, modals, home):
        surface.register(app, deps)
    return app
