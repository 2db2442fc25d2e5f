"""Who asks for an action, and the rules for who may take it (checked on the server, at click time)."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bot.config import FunctionPolicy
from bot.model import Deployment
from bot.ports import CanaryError

Source = Literal["slack", "cli", "bot"]
BOT_NAME = "canary-bot"


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str  # Slack user ID, OS user name, or "canary-bot"
    name: str
    source: Source
    channel: str | None = None  # Slack channel ID the request came from
    channel_name: str | None = None  # its name, without '#'

    @property
    def label(self) -> str:
        """How the audit log names the actor: 'slack:U123 (maria)', 'cli:root', 'canary-bot'."""
        if self.source == "bot":
            return BOT_NAME
        if self.source == "slack":
            return f"slack:{self.id} ({self.name})"
        return f"cli:{self.id}"

    @property
    def key(self) -> str:
        """Who the actor is, without the name they go by: 'slack:U123', 'cli:root', 'canary-bot'.

        People are compared by this (two-person rule, "is this the starter"), never by `label`: a Slack name
        can change, and two requests from the same user ID are the same person whatever name they carry.
        """
        return person_key(self.label)

    def is_person(self, label: str) -> bool:
        """Whether an audit label (e.g. a deployment's `created_by`) names this same person."""
        return person_key(label) == self.key

    @property
    def mention(self) -> str:
        return f"<@{self.id}>" if self.source == "slack" else self.name


def person_key(label: str) -> str:
    """The identity inside an audit label: 'slack:U123 (maria)' → 'slack:U123'; other labels are their own key."""
    if label.startswith("slack:"):
        return label.split(" ", 1)[0]
    return label


BOT = Actor(id=BOT_NAME, name=BOT_NAME, source="bot")


def cli_actor(user: str) -> Actor:
    return Actor(id=user, name=user, source="cli")


class NotAuthorized(CanaryError):
    """The actor may not take this action here (not an approver, wrong channel, two-person rule)."""


class GroupDirectory(Protocol):
    def members(self, group_id: str) -> frozenset[str]:
        """User IDs of a Slack user group (S…)."""
        ...


Action = Literal[
    "start",
    "promote",
    "rollback",
    "weight",
    "hold",
    "resume",
    "extend",
    "cancel",
    "override",
    "revert",
    "fallback",
    "lock",
    "unlock",
]


class Authorizer:
    """Applies the policy's people rules.

    The CLI runs with the operator's own AWS credentials, which already let them change the alias, so
    CLI actors are not second-guessed here; Slack users are checked against the policy.
    """

    def __init__(self, groups: GroupDirectory | None = None) -> None:
        self._groups = groups

    def check(
        self, actor: Actor, policy: FunctionPolicy, action: Action, deployment: Deployment | None
    ) -> None:
        if actor.source != "slack":
            return
        self._check_channel(actor, policy)
        starter = deployment is not None and actor.is_person(deployment.created_by)
        if action in ("start", "lock"):
            # Whoever may start canaries may also stop new ones (a lock); lifting one is an approver's call.
            if policy.deployers and not self._listed(actor.id, policy.deployers + policy.approvers):
                raise NotAuthorized(f"{actor.mention} is not allowed to {action} canaries of this function")
            return
        if action in ("rollback", "hold", "extend", "cancel") and starter:
            return  # the starter may always back out or pause their own canary
        if not self._listed(actor.id, policy.approvers):
            who = ", ".join(_mention(a) for a in policy.approvers) or "nobody (no approvers in the policy)"
            raise NotAuthorized(f"{actor.mention} is not an approver for this function. Approvers: {who}")
        if action == "promote" and policy.two_person_rule and starter:
            raise NotAuthorized(
                f"{actor.mention} started this canary and cannot also promote it (two-person rule): "
                "another approver must."
            )

    def is_approver(self, actor: Actor, policy: FunctionPolicy) -> bool:
        return actor.source != "slack" or self._listed(actor.id, policy.approvers)

    def _check_channel(self, actor: Actor, policy: FunctionPolicy) -> None:
        allowed = set(policy.allowed_channels) or ({policy.channel} if policy.channel else set())
        if not allowed or actor.channel is None:
            # No channel: the App Home tab, a private surface; every action is still announced in the
            # deployment's thread, so the team sees it where the channel rule wants it seen.
            return
        # Policy entries are channel IDs (C…) or names ('#deploys').
        here = {actor.channel, f"#{actor.channel_name}" if actor.channel_name else None} - {None}
        if not here & {c if c.startswith("#") or c[:1] in "CGD" else f"#{c}" for c in allowed}:
            raise NotAuthorized(
                f"canaries of this function are run from {', '.join(sorted(allowed))}, not this channel"
            )

    def _listed(self, user_id: str, entries: tuple[str, ...]) -> bool:
        for entry in entries:
            if entry == user_id:
                return True
            if entry.startswith("S") and self._groups is not None and user_id in self._groups.members(entry):
                return True
        return False


def _mention(entry: str) -> str:
    return f"<!subteam^{entry}>" if entry.startswith("S") else f"<@{entry}>"
