"""What follows a recorded traffic change: the canary's alarms and dashboard, the lock after a rollback, and
the announcement (with the deployment's Slack thread). The reconciler runs it until the intent is done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.actors import BOT
from bot.comms import deployment_evidence
from bot.config import FunctionPolicy, Policy
from bot.events import AnyEvent, MessageRef, Started, StateNoted, TrafficChanged
from bot.intents import Intent
from bot.locks import lock_rolled_back_version
from bot.model import AliasState, Deployment
from bot.ports import AlarmsPort, Clock, StorePort

log = logging.getLogger(__name__)


class FollowUps:
    def __init__(
        self,
        *,
        store: StorePort,
        clock: Clock,
        policy: Policy,
        notify: Callable[[AnyEvent], object],
        alarms: AlarmsPort | None,
        alarm_topic_arn: str | None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._notify = notify
        self._alarms = alarms
        self._alarm_topic_arn = alarm_topic_arn

    def run(self, intent: Intent, d: Deployment) -> None:
        """Alarms, dashboard, the rollback lock and the announcement of a recorded change (idempotent: a crash
        before the intent is marked done runs it again, and the announcement's key tells it once)."""
        policy = self._function_policy(d.function)
        if intent.kind == "start":
            self._create_alarms(d, policy)
        elif intent.kind in ("promote", "rollback"):
            self._delete_alarms(d, policy.log_group)
        if intent.kind == "rollback" and policy.lock_after_rollback:
            lock_rolled_back_version(self._store, d, at=intent.done_at or self._clock.now())
        ref = self._notify(self._announcement(intent, d))
        if intent.kind == "start" and isinstance(ref, MessageRef) and not d.thread_ts:
            self._save_thread(d, ref)

    def _save_thread(self, d: Deployment, ref: MessageRef) -> None:
        """The parent message's ts: every later message about the deployment goes in its thread."""
        self._store.record_thread(d.id, ref.channel, ref.ts)

    def _announcement(self, intent: Intent, d: Deployment) -> AnyEvent:
        before = _alias(d, intent.alias_before)
        after = _alias(d, intent.alias_after)
        at = intent.done_at or self._clock.now()
        if intent.kind == "start":
            return Started(
                deployment=d,
                at=at,
                actor=intent.actor,
                actor_mention=intent.actor_mention,
                alias_before=before,
                alias_after=after,
                key=f"intent:{intent.id}",
            )
        action = {
            "promote": "promoted",
            "rollback": "rolled_back",
            "weight": "weight",
            "revert": "reverted",
            "fallback": "fallback",
        }.get(intent.kind, "next_step")
        detected = intent.detail.get("detected_at")
        return TrafficChanged(
            deployment=d,
            at=at,
            actor=intent.actor,
            actor_mention=intent.actor_mention,
            action=action,
            alias_before=before,
            alias_after=after,
            reason=intent.reason,
            automatic=intent.actor == BOT.label,
            detected_at=datetime.fromisoformat(detected) if detected else None,
            reverted_at=at if intent.kind in ("rollback", "revert", "fallback") else None,
            # The periods the soak reports judged: the summary gives the same figures as the last report.
            figures=(
                deployment_evidence(d, self._store.figures_for(d.id), self._store.audit_for(d.id))
                if intent.kind in ("promote", "rollback")
                else []
            ),
            key=f"intent:{intent.id}",
        )

    def _create_alarms(self, d: Deployment, policy: FunctionPolicy) -> None:
        """Per-canary alarms and dashboard. Best effort: the soak judge watches the same thresholds, so a
        CloudWatch hiccup here is logged and announced, not fatal. Idempotent (PutMetricAlarm upserts)."""
        if self._alarms is None:
            return
        try:
            self._alarms.create_canary_alarms(
                d,
                topic_arn=self._alarm_topic_arn,
                thresholds=policy.thresholds,
                period_seconds=int(policy.period.total_seconds()),
                evaluation_periods=policy.evaluation_periods,
                log_group=policy.log_group,
            )
            self._alarms.put_dashboard(d, thresholds=policy.thresholds, log_group=policy.log_group)
        except Exception as exc:
            log.exception("could not create alarms or dashboard for %s", d.id)
            self._notify(
                StateNoted(
                    deployment=d,
                    at=self._clock.now(),
                    actor=BOT.label,
                    what="warning",
                    reason=f"CloudWatch alarms could not be created: {exc}",
                )
            )

    def _delete_alarms(self, d: Deployment, log_group: str | None = None) -> None:
        """The canary's alarms (and cache metric filters) end with it; its dashboard stays for the review."""
        if self._alarms is None:
            return
        try:
            self._alarms.delete_canary_alarms(d, log_group=log_group)
        except Exception:
            log.exception("could not delete alarms for %s", d.id)

    def _function_policy(self, function: str) -> FunctionPolicy:
        return self._policy.for_function(function) or FunctionPolicy.model_validate(self._policy.defaults)


def _alias(d: Deployment, routing: dict[str, object] | None) -> AliasState:
    routing = routing or {}
    return AliasState(
        function=d.function,
        alias=d.alias,
        version=str(routing.get("version", d.stable_version)),
        weights=dict(routing.get("weights", {})),  # type: ignore[call-overload]
        revision_id=str(routing.get("revision_id", "")),
    )
