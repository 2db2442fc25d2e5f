"""`canary-bot serve`: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on PORT (/slack/events).

Both modes also serve /healthz and /sns on PORT, start the soak scheduler (its jobs derived from the store),
and poll the alarm queue when CANARY_ALARM_QUEUE_URL is set.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from slack_bolt import App

from bot.config import PolicyError, Settings

if TYPE_CHECKING:
    from bot.console import Console

log = logging.getLogger(__name__)


def serve_main(args: Sequence[str], console: Console) -> int:
    if list(args) in (["--help"], ["-h"]):
        console.say(
            "usage: canary-bot serve   (configured by the environment: see the README's Configuration)"
        )
        return 0
    if args:
        console.warn(
            f"error: serve takes no arguments (got {' '.join(args)}); configure it with the environment"
        )
        console.warn("usage: canary-bot serve")
        return 2
    from bot.slack_client import SlackSettingsError, make_web_client, validate_slack_settings

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        console.warn(f"error: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        return 2
    socket_mode = bool(settings.slack_app_token)
    try:
        validate_slack_settings(settings, socket_mode=socket_mode)
    except SlackSettingsError as exc:
        console.warn(f"error: {exc}")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.clock import SystemClock
    from bot.runtime import aws_adapters, build_runtime
    from bot.store import SchemaTooNew, open_store

    try:
        runtime = build_runtime(
            settings,
            slack=make_web_client(settings.slack_bot_token or "", base_url=settings.slack_api_url),
            clock=SystemClock(),
            store=open_store(settings.store_url, region=settings.aws_region),
            aws=aws_adapters(settings),
        )
    except PolicyError as exc:
        console.warn(f"error: bad policy file: {exc}")
        return 2
    except (ValueError, SchemaTooNew) as exc:  # a bad CANARY_STORE_URL, a missing table, a newer store
        console.warn(f"error: {exc}")
        return 2
    off = runtime.service.alarm_rollback_off
    if off:
        # Canaries still run, judged by the soak thresholds; the operator must know alarms cannot act.
        console.warn(f"warning: alarm rollback OFF: {off}")
        log.warning("alarm rollback OFF: %s", off)
    return _run(runtime, socket_mode=socket_mode, console=console)


# Seconds between WebSocket pings (slack_sdk's own default). The built-in client declares a connection stale,
# and opens a new one, when no pong came for more than 4 pings: a connection that dropped without a close
# frame is replaced within about 20 s (measured in tests/test_socket_mode.py with a shorter interval).
SOCKET_MODE_PING_SECONDS = 5.0


def socket_mode_handler(app: App, app_token: str, *, ping_interval: float = SOCKET_MODE_PING_SECONDS) -> Any:
    """Bolt's built-in Socket Mode handler (slack_sdk.socket_mode.builtin: no extra dependency).

    It opens the WebSocket URL from `apps.connections.open` on the app's WebClient (so SLACK_API_URL applies),
    acks each envelope with its envelope_id once the listener's ack ran, reconnects on Slack's `disconnect`
    (refresh_requested) and on a close frame at once, and on a silently dropped connection after about
    4 × `ping_interval` seconds without a pong.
    """
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token, ping_interval=ping_interval)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _run(runtime: Any, *, socket_mode: bool, console: Console) -> int:
    from bot.http_server import BackgroundServer, make_wsgi_app, serve

    stop = threading.Event()
    runtime.start_background(stop)
    settings = runtime.settings
    try:
        if socket_mode:
            side = make_wsgi_app(None, sns_handler=runtime.sns_intake, health=runtime.health)
            with BackgroundServer(side, host="0.0.0.0", port=settings.port):
                console.say(f"canary-bot: Socket Mode; /healthz and /sns on port {settings.port}")
                handler = socket_mode_handler(runtime.app, settings.slack_app_token or "")
                signal.signal(signal.SIGTERM, lambda *_: handler.close())
                handler.start()
        else:
            console.say(f"canary-bot: HTTP on port {settings.port} (/slack/events, /sns, /healthz)")
            # SIGTERM (docker stop, a rolling deploy) stops as Ctrl-C does: through `finally`, so the scheduler
            # finishes its job and hands this replica's deployments to the others at once.
            signal.signal(signal.SIGTERM, _interrupt)
            serve(
                make_wsgi_app(runtime.app, sns_handler=runtime.sns_intake, health=runtime.health),
                port=settings.port,
            )
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        runtime.scheduler.shutdown()
        if runtime.outbox_worker is not None:
            runtime.outbox_worker.stop()
    return 0
