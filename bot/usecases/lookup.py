"""Lookup: the deployment and policy a request is about, and how to say what happened to it."""

from __future__ import annotations

from bot.config import FunctionPolicy, Policy
from bot.model import Deployment, State
from bot.ports import StorePort
from bot.usecases.refusals import AlreadyActed, NothingLive, NotInPolicy

# How the audit's action names read in a sentence ('… was rolled back by <@U1> at 14:20 UTC').
_ACTION_WORDS = {
    "plan": "was planned",
    "start": "was started",
    "cancel": "was cancelled",
    "promote": "was promoted",
    "begin_rollback": "began rolling back",
    "rollback": "was rolled back",
    "finish_rollback": "was rolled back",
    "set_weight": "had its weight changed",
    "next_step": "moved to its next step",
    "hold": "was held",
    "resume": "was resumed",
    "extend": "had its soak extended",
    "await_approval": "passed its soak and awaits approval",
    "note_verdict": "was checked",
    "breach_alert": "breached its thresholds",
    "watch_end": "ended its watch",
}


class Lookup:
    def __init__(self, store: StorePort, policy: Policy) -> None:
        self._store = store
        self.policy = policy

    def policy_for(self, function: str) -> FunctionPolicy:
        return policy_of(self.policy, function)

    def alias_for(self, function: str, alias: str | None) -> str:
        return alias or self.policy_for(function).alias

    def live(self, function: str, alias: str | None = None) -> Deployment:
        alias = self.alias_for(function, alias)
        found = self._store.live_for(function, alias)
        if found is None:
            latest = self._store.history(function, alias, 1)
            last = f" (latest: {latest[0].id}: {self.who_acted(latest[0])})" if latest else ""
            raise NothingLive(f"no live canary on {function}:{alias}{last}")
        return found

    def get(self, deployment_id: str) -> Deployment:
        found = self._store.get(deployment_id)
        if found is None:
            raise NothingLive(f"no deployment {deployment_id}")
        return found

    def target(self, function: str, alias: str | None, deployment_id: str | None) -> Deployment:
        """The live deployment a request names (by id from a button, else the function's live one)."""
        if deployment_id is None:
            return self.live(function, alias)
        d = self.get(deployment_id)
        if not d.is_live:
            raise AlreadyActed(self.who_acted(d))
        return d

    def check_click(self, d: Deployment, expected_revision: int | None) -> None:
        """A button rendered for an older state of the deployment is refused, saying what changed."""
        if expected_revision is None or d.revision == expected_revision:
            return
        raise AlreadyActed(f"this message is out of date: {self.who_acted(d)}")

    def who_acted(self, d: Deployment) -> str:
        """'fn:alias was rolled back by <@U1> at 14:20 UTC': the last step people can read, no internal words."""
        current = self._store.get(d.id) or d
        records = [r for r in self._store.audit_for(d.id) if r.phase in ("done", "event")]
        if not records or (records[-1].to_state not in (None, current.state)):
            # No record yet of the step that led here (its audit line is being written): the state says it.
            return f"{current.key} is {state_words(current.state)}"
        last = records[-1]
        did = _ACTION_WORDS.get(last.action, last.action.replace("_", " "))
        return f"{current.key} {did} by {person(last.actor)} at {last.at:%H:%M} UTC"


def policy_of(policy: Policy, function: str) -> FunctionPolicy:
    """The function's merged policy; NotInPolicy (bad input) naming the functions listed when it is not."""
    found = policy.for_function(function)
    if found is None:
        listed = ", ".join(policy.function_names()) or "none"
        raise NotInPolicy(f"{function} is not listed in the canary policy (listed: {listed})")
    return found


def state_words(state: State) -> str:
    return "soaking" if state is State.CANARY else state.value.replace("_", " ")


def person(label: str) -> str:
    """An audit label as people read it: 'slack:U1 (maria)' → '<@U1>', 'cli:root@host' → 'root@host'."""
    if label.startswith("slack:"):
        return f"<@{label.split(' ', 1)[0].removeprefix('slack:')}>"
    return label.removeprefix("cli:")
