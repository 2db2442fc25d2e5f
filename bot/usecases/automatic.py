"""What the bot decides on its own: from the soak's verdicts, the approval deadline and CloudWatch alarms."""

from __future__ import annotations

from datetime import datetime

from bot import canary
from bot.actors import BOT
from bot.config import FunctionPolicy
from bot.events import DecisionNeeded
from bot.intents import Routing
from bot.model import AuditRecord, BreachCause, Deployment
from bot.ports import Clock, StaleDeployment, StorePort
from bot.reconciler import DriveResult
from bot.usecases.announcer import Announcer
from bot.usecases.controlling import Controlling
from bot.usecases.lookup import Lookup
from bot.usecases.results import ActionResult
from bot.usecases.writer import AliasWriter


class Automatic:
    def __init__(
        self,
        *,
        store: StorePort,
        clock: Clock,
        lookup: Lookup,
        writer: AliasWriter,
        announcer: Announcer,
        controlling: Controlling,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lookup = lookup
        self._writer = writer
        self._announcer = announcer
        self._controlling = controlling

    def note_verdict(self, d: Deployment, *, verdict: str, breach_streak: int) -> Deployment:
        """Remember the latest judgement; losing a race with a person's action is fine (they win)."""
        try:
            return self._store.save(
                canary.note_verdict(d, now=self._clock.now(), verdict=verdict, breach_streak=breach_streak)
            )
        except StaleDeployment:
            return self._lookup.get(d.id)

    def next_step(self, d: Deployment, *, reason: str) -> ActionResult:
        """The step soaked clean: go to the next weight of the schedule."""
        new_weight = d.steps[d.step_index + 1]
        result = self._writer.apply(
            d,
            BOT,
            "next_step",
            Routing(version=d.stable_version, weights={d.canary_version: new_weight}),
            reason=reason,
        )
        d, after = self._writer.landed(result)
        return self._writer.answer(d, "next_step", after)

    def roll_back(
        self,
        d: Deployment,
        *,
        reason: str,
        detected_at: datetime | None = None,
        cause: BreachCause | None = None,
    ) -> ActionResult:
        """The judge found a breach (on_breach: rollback; `cause` is its failing metric) or the approval
        deadline passed."""
        return self._controlling.rollback(
            d.function, d.alias, BOT, reason=reason, deployment_id=d.id, detected_at=detected_at, cause=cause
        )

    def roll_back_for_alarm(
        self, d: Deployment, *, alarm: str, reason: str, received_at: datetime
    ) -> DriveResult | None:
        """Durable first (ROLLING_BACK + the rollback intent), then one attempt; None when the canary is no
        longer live. Raises only when nothing durable could be written (the alarm must come back)."""
        cause = BreachCause(kind="alarm", alarm=alarm)
        marked = self._writer.begin_rollback(d, BOT, reason=reason, now=received_at, cause=cause)
        if marked is None:
            return None
        return self._writer.request_rollback(
            marked, BOT, reason=reason, detected_at=received_at, wait_for_lease=5.0
        )

    def await_approval(self, d: Deployment, *, reason: str) -> ActionResult:
        """The soak passed: ask the approvers, until the policy's approval timeout."""
        policy = self._lookup.policy_for(d.function)
        deadline = self._clock.now() + policy.approval_timeout
        d = self._writer.transition(
            canary.await_approval(d, now=self._clock.now(), deadline=deadline, reason=reason)
        )
        self._announcer.announce(self._decision(d, "approval", reason, policy, deadline=deadline))
        return ActionResult(deployment=d, message=f"approval wanted: {reason}")

    def inconclusive(self, d: Deployment, *, reason: str) -> ActionResult:
        """Too little evidence at soak end: hold (traffic unchanged) and ask people; never promote."""
        policy = self._lookup.policy_for(d.function)
        d = self._writer.transition(
            canary.hold(d, now=self._clock.now(), actor=BOT.label, reason=f"inconclusive: {reason}")
        )
        self._announcer.announce(self._decision(d, "inconclusive", reason, policy))
        return ActionResult(deployment=d, message=f"inconclusive: {reason}")

    def breach_alert(self, d: Deployment, *, reason: str) -> ActionResult:
        """on_breach: alert (or a held canary breaching): tell the approvers, change nothing."""
        policy = self._lookup.policy_for(d.function)
        self._store.append_audit(
            AuditRecord(
                deployment_id=d.id,
                at=self._clock.now(),
                actor=BOT.label,
                action="breach_alert",
                from_state=d.state,
                to_state=d.state,
                reason=reason,
            )
        )
        self._announcer.announce(self._decision(d, "breach_alert", reason, policy))
        return ActionResult(deployment=d, message=f"breach alert: {reason}")

    def approval_timed_out(self, d: Deployment, *, action: str, reason: str) -> ActionResult:
        """Nobody decided in time: the policy's default action, announced."""
        policy = self._lookup.policy_for(d.function)
        self._announcer.announce(self._decision(d, "approval_timeout", reason, policy))
        if action == "hold":
            d = self._writer.transition(canary.hold(d, now=self._clock.now(), actor=BOT.label, reason=reason))
            return ActionResult(deployment=d, message=f"held: {reason}")
        return self.roll_back(d, reason=reason)

    def auto_promote(self, d: Deployment, *, reason: str) -> ActionResult:
        """Only when the policy says auto_promote: the soak passed every check."""
        return self._controlling.promote(
            d.function, d.alias, BOT, deployment_id=d.id, expected_revision=d.revision
        )

    def _decision(
        self,
        d: Deployment,
        why: str,
        reason: str,
        policy: FunctionPolicy,
        *,
        deadline: datetime | None = None,
    ) -> DecisionNeeded:
        return DecisionNeeded(
            deployment=d,
            at=self._clock.now(),
            actor=BOT.label,
            why=why,
            reason=reason,
            approvers=policy.approvers,
            deadline=deadline,
        )
