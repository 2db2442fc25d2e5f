"""Assembly: settings + clients → service, Bolt app, soak runner and scheduler, alarm intakes.

`canary-bot serve` builds it from the environment; the demo builds it around moto and a fake Slack.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.alarm_responder import AlarmResponder
from bot.app import create_app
from bot.composition import (
    AwsAdapters,
    alarm_responder,
    aws_adapters,
    build_service,
    fanout_publisher,
    soak_runner,
)
from bot.config import Policy, Settings, load_policy
from bot.events import AlarmAlert
from bot.outbox import BackgroundDrainer, Outbox, OutboxDrainer
from bot.ports import Clock, StorePort
from bot.scheduler import SoakScheduler
from bot.service import CanaryService
from bot.sns_http import SnsHttpIntake
from bot.sns_verify import SnsVerifier
from bot.soak import SoakRunner
from bot.tick_lease import TickLeases
from bot.usecases.announcer import Announcer

log = logging.getLogger(__name__)

__all__ = ["AwsAdapters", "Runtime", "aws_adapters", "build_runtime", "poison_reporter"]


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    clock: Clock
    store: StorePort
    service: CanaryService
    slack: WebClient
    app: App
    soak: SoakRunner
    scheduler: SoakScheduler
    responder: AlarmResponder
    sns_intake: SnsHttpIntake
    alarm_queue: Any | None  # bot.aws.alarm_queue.AlarmQueue
    outbox: OutboxDrainer
    outbox_worker: BackgroundDrainer | None = None  # None when inline (tests, the demo): drained at once
    alarm_thread: threading.Thread | None = None
    started: bool = False

    def start_background(self, stop: threading.Event) -> None:
        """Start the outbox worker (first: messages left by an earlier run go out at once), the soak scheduler
        and, when configured, the alarm queue poller (until `stop` is set)."""
        if self.outbox_worker is not None:
            self.outbox_worker.start()
        self.scheduler.start()
        if self.alarm_queue is not None:
            self.alarm_thread = threading.Thread(
                target=self.alarm_queue.run_forever, args=(stop,), name="alarm-queue", daemon=True
            )
            self.alarm_thread.start()
        self.started = True

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy when the store answers and, once started, the scheduler, the alarm poller and the outbox
        worker are alive."""
        live = self.store.list_live()
        details: dict[str, Any] = {"live_canaries": len(live), "time": self.clock.now().isoformat()}
        if not self.started:
            details["scheduler"] = "not started"
            return True, details
        scheduler_ok = self.scheduler.is_alive()
        details["scheduler"] = "running" if scheduler_ok else "stopped"
        queue_ok = True
        if self.alarm_queue is None:
            details["alarm_queue"] = "off"
        else:
            queue_ok = self.alarm_thread is not None and self.alarm_thread.is_alive()
            details["alarm_queue"] = "polling" if queue_ok else "stopped"
        outbox_ok = self.outbox_worker is None or self.outbox_worker.alive()
        details["outbox"] = (
            "inline" if self.outbox_worker is None else ("delivering" if outbox_ok else "stopped")
        )
        return scheduler_ok and queue_ok and outbox_ok, details


def build_runtime(
    settings: Settings,
    *,
    slack: WebClient,
    clock: Clock,
    store: StorePort,
    aws: AwsAdapters,
    policy: Policy | None = None,
    inline: bool = False,
    tick_every: timedelta | None = None,
) -> Runtime:
    policy = policy or load_policy(settings.policy_file)
    # The drainer also publishes the alert fan-out's SNS rows (this replica's, the others', the responder's).
    drainer = OutboxDrainer(
        store, slack, clock, lane_lease=settings.lease_ttl, topics=fanout_publisher(settings, aws)
    )
    background = None if inline else BackgroundDrainer(drainer)
    outbox = Outbox(store, clock, wake=drainer.drain if background is None else background.wake)
    service = build_service(
        settings, policy=policy, clock=clock, store=store, aws=aws, slack=slack, outbox=outbox
    )
    # Charts come from bot.charts, imported on the first report (matplotlib takes ~2 s to import: not at start).
    # Replicas on one store share the soak loop: a tick lease per deployment, held for CANARY_LEASE_TTL.
    soak = soak_runner(service, aws.metrics, leases=TickLeases(store, clock, ttl=settings.lease_ttl))
    scheduler = SoakScheduler(
        soak,
        tick_every=tick_every or settings.tick_every,
        reconcile_every=settings.reconcile_every,
        reconciler=service.reconciler,
    )
    responder = alarm_responder(service, default_channel=settings.alert_channel)
    report_poison = poison_reporter(store, clock, service.announcer, settings.alert_channel)
    sns_intake = SnsHttpIntake(SnsVerifier(settings.allowed_topics()), responder, on_poison=report_poison)
    queue = None
    if settings.alarm_queue_url and aws.sqs is not None:
        from bot.aws.alarm_queue import AlarmQueue

        queue = AlarmQueue(aws.sqs, settings.alarm_queue_url, responder.handle, report_poison)
    app = create_app(
        settings, service, slack, store=store, clock=clock, inline=inline, soak=soak, outbox=outbox
    )
    return Runtime(
        settings=settings,
        policy=policy,
        clock=clock,
        store=store,
        service=service,
        slack=slack,
        app=app,
        soak=soak,
        scheduler=scheduler,
        responder=responder,
        sns_intake=sns_intake,
        alarm_queue=queue,
        outbox=drainer,
        outbox_worker=background,
    )


def poison_reporter(store: StorePort, clock: Clock, announcer: Announcer, channel: str | None) -> Any:
    """Report an unreadable alarm notification once (per message id) to the log and the alert channel."""

    def report(message_id: str, reason: str) -> None:
        log.error("unreadable alarm notification %s: %s", message_id, reason)
        if not store.claim(f"poison:{message_id}", clock.now()):
            return
        alert = AlarmAlert(
            at=clock.now(),
            alarm_name="(unreadable notification)",
            state="UNREADABLE",
            reason=f"message {message_id}: {reason}",
            function=None,
            deployment=None,
            channel=channel,
        )
        announcer.announce(alert)

    return report
