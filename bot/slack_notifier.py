"""SlackNotifier: renders the service's events with bot.views and delivers them through the Slack Web API.

One thread per deployment: `Started` posts the parent message (the live truth) and returns it; every later
event, the watch after a promotion included, is a reply in that thread, and the parent is edited to the new
state. Replies that need people (approval wanted, inconclusive soak, breach alert, rollback done, drift, alarm,
a breach during the watch, a post-mortem that finds the alias changed) are also broadcast to the channel.

Errors: slack_sdk's retry handlers (bot.slack_client) retry rate limits and transient failures; a final
failure of the message itself is raised (the service logs it: a Slack outage never blocks or undoes a traffic
change). Secondary calls after the message is out (editing the parent, uploading the chart) are logged and
swallowed, so their failure never hides a delivered message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.comms import migration_verified
from bot.config import FunctionPolicy, Policy
from bot.events import (
    AlarmAlert,
    AnyEvent,
    DecisionNeeded,
    MessageRef,
    PostMortem,
    SoakReport,
    Started,
    StateNoted,
    TrafficChanged,
    WatchAlert,
    WatchCheckIn,
)
from bot.judge import PeriodVerdict
from bot.model import AliasState, Deployment
from bot.outbox import Outbox, Thread, lane_of, parent_key
from bot.ports import Clock
from bot.views import (
    alarm_blocks,
    decision_blocks,
    parent_blocks,
    parent_text,
    post_mortem_blocks,
    soak_report_blocks,
    state_noted_blocks,
    traffic_changed_blocks,
    watch_alert_blocks,
    watch_check_in_blocks,
)
from bot.views.text import clip

log = logging.getLogger(__name__)

DashboardUrl = Callable[[Deployment], str | None]
Blocks = list[dict[str, Any]]
WatchEvent = WatchCheckIn | WatchAlert | PostMortem

# Notification text (what a phone's lock screen shows) is cut to this.
FALLBACK_TEXT_MAX = 300


class SlackNotifier:
    def __init__(
        self,
        client: WebClient,
        policy: Policy,
        clock: Clock,
        *,
        dashboard_url: DashboardUrl | None = None,
        outbox: Outbox | None = None,
        alarm_rollback_off: str | None = None,
    ) -> None:
        self._client = client
        self._alarm_rollback_off = alarm_rollback_off
        self._policy = policy
        self._clock = clock
        self._dashboard_url = dashboard_url
        # With an outbox (serve, the demo, the Slack tests) every message is a row delivered by its drainer;
        # without one, messages are sent at once on the caller's thread.
        self._outbox = outbox

    def publish(self, event: AnyEvent) -> MessageRef | None:
        now = self._clock.now()
        if isinstance(event, AlarmAlert):
            return self._alarm(event, now)
        if isinstance(event, Started):
            return self._started(event, now)
        d = event.deployment
        policy = self._function_policy(d.function)
        blocks, broadcast = self._render(event, policy, now)
        alias = _alias_of(event)
        last = _last_verdict(event) if isinstance(event, SoakReport) else None
        try:
            ref = self._post_about(d, policy, blocks, broadcast=broadcast, key=event.key)
        finally:
            # The parent is the live truth: bring it up to date even when the reply could not be posted.
            self._refresh_parent(d, now, alias=alias, last=last)
        if isinstance(event, SoakReport) and event.chart_png:
            if self._outbox is not None:
                self._queue_chart(event, policy)
            elif ref is not None:
                self._upload_chart(ref, event)
        return ref

    # ------------------------------------------------------------ rendering
    def _render(
        self,
        event: TrafficChanged | StateNoted | SoakReport | DecisionNeeded | WatchEvent,
        policy: FunctionPolicy,
        now: datetime,
    ) -> tuple[Blocks, bool]:
        """The reply's blocks, and whether it is broadcast to the channel (people must act or know now)."""
        if isinstance(event, WatchCheckIn):
            return watch_check_in_blocks(event, policy=policy, now=now), False
        if isinstance(event, WatchAlert):
            return watch_alert_blocks(event, policy=policy, now=now), True
        if isinstance(event, PostMortem):
            # Broadcast only when the alias is not what the promotion left: someone must look.
            changed = not migration_verified(event.deployment, event.alias)
            return post_mortem_blocks(event, policy=policy, now=now), changed
        if isinstance(event, TrafficChanged):
            urgent = event.action in ("rolled_back", "reverted", "fallback")
            return traffic_changed_blocks(event, policy=policy, now=now), urgent
        if isinstance(event, StateNoted):
            urgent = event.what in ("drift", "stuck")
            approvers = policy.approvers if urgent else ()
            return state_noted_blocks(event, now=now, approvers=approvers), urgent
        if isinstance(event, SoakReport):
            blocks = soak_report_blocks(
                event.deployment,
                number=event.number,
                total=event.total,
                figures=event.figures,
                verdicts=_verdicts(event),
                policy=policy,
                now=now,
            )
            return blocks, False
        blocks = decision_blocks(
            event.deployment,
            why=event.why,
            reason=event.reason,
            approvers=event.approvers or policy.approvers,
            deadline=event.deadline,
            policy=policy,
            now=now,
        )
        # A time-out that rolls back is announced by the rollback itself; one that holds needs people.
        wanted = event.why != "approval_timeout" or policy.on_approval_timeout == "hold"
        return blocks, wanted

    # ------------------------------------------------------------ delivery
    def _started(self, event: Started, now: datetime) -> MessageRef | None:
        d = event.deployment
        channel = d.channel or self._function_policy(d.function).channel
        if not channel:
            log.warning("no Slack channel for %s: canary %s not announced", d.function, d.id)
            return None
        if self._outbox is not None:
            self._outbox.post(
                lane=lane_of(d.id, channel),
                channel=channel,
                key=parent_key(d.id),
                thread_for_deployment=d.id,
                params={
                    "text": parent_text(d),
                    "blocks": self._parent(d, now, alias=event.alias_after, last=None),
                    "unfurl_links": False,
                    "unfurl_media": False,
                },
            )
            return None
        response = self._client.chat_postMessage(
            channel=channel,
            text=parent_text(d),
            blocks=self._parent(d, now, alias=event.alias_after, last=None),
            unfurl_links=False,
            unfurl_media=False,
        )
        return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))

    def _thread(self, d: Deployment) -> Thread | None:
        """The deployment's thread: its parent's ts, or (queued, not yet sent) the parent's outbox key."""
        if d.thread_ts:
            return Thread(ts=d.thread_ts)
        if self._outbox is not None and self._outbox.has(parent_key(d.id)):
            return Thread(key=parent_key(d.id))
        return None

    def _post_about(
        self,
        d: Deployment,
        policy: FunctionPolicy,
        blocks: Blocks,
        *,
        broadcast: bool,
        key: str | None = None,
    ) -> MessageRef | None:
        """In the deployment's thread; in the channel itself when the thread was never created."""
        channel = d.channel or policy.channel
        if not channel:
            log.warning("no Slack channel for %s: event about %s not delivered", d.function, d.id)
            return None
        if self._outbox is not None:
            thread = self._thread(d)
            params: dict[str, Any] = {
                "text": _fallback_text(blocks),
                "blocks": blocks,
                "unfurl_links": False,
                "unfurl_media": False,
            }
            if thread is not None:
                params["reply_broadcast"] = broadcast
            self._outbox.post(
                lane=lane_of(d.id, channel), channel=channel, params=params, key=key, thread=thread
            )
            return None
        in_thread: dict[str, Any] = {}
        if d.thread_ts:
            in_thread = {"thread_ts": d.thread_ts, "reply_broadcast": broadcast}
        response = self._client.chat_postMessage(
            channel=channel,
            text=_fallback_text(blocks),
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            **in_thread,
        )
        return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))

    def _refresh_parent(
        self, d: Deployment, now: datetime, *, alias: AliasState | None, last: PeriodVerdict | None
    ) -> None:
        if self._outbox is not None:
            target = self._thread(d)
            channel = d.channel or self._function_policy(d.function).channel
            if target is None or not channel:
                return
            params = {"text": parent_text(d), "blocks": self._parent(d, now, alias=alias, last=last)}
            self._outbox.update(lane=lane_of(d.id, channel), channel=channel, target=target, params=params)
            return
        if not (d.channel and d.thread_ts):
            return
        try:
            self._client.chat_update(
                channel=d.channel,
                ts=d.thread_ts,
                text=parent_text(d),
                blocks=self._parent(d, now, alias=alias, last=last),
            )
        except SlackClientError:
            log.exception("could not update the parent message of %s", d.id)

    def _queue_chart(self, event: SoakReport, policy: FunctionPolicy) -> None:
        d = event.deployment
        channel = d.channel or policy.channel
        thread = self._thread(d)
        if not channel or thread is None or self._outbox is None or event.chart_png is None:
            return
        self._outbox.upload(
            lane=lane_of(d.id, channel),
            channel=channel,
            thread=thread,
            file=event.chart_png,
            params=_chart_params(event),
        )

    def _upload_chart(self, ref: MessageRef, event: SoakReport) -> None:
        d = event.deployment
        assert event.chart_png is not None
        try:
            self._client.files_upload_v2(
                channel=ref.channel,
                thread_ts=d.thread_ts or ref.ts,
                file=event.chart_png,
                **_chart_params(event),
            )
        except SlackClientError:
            log.exception("could not upload the soak chart of %s", d.id)

    def _alarm(self, event: AlarmAlert, now: datetime) -> MessageRef | None:
        d = event.deployment
        function = event.function or (d.function if d else None)
        policy = self._policy.for_function(function) if function else None
        blocks = alarm_blocks(event, policy=policy, now=now)
        text = _fallback_text(blocks)
        # Broadcast an alarm people must act on; a rollback it caused was already broadcast with the
        # approvers, so its alarm details stay in the thread.
        alarming = event.state.upper() == "ALARM" and not event.follow_up and not event.rolled_back
        if self._outbox is not None:
            thread = self._thread(d) if d is not None else None
            channel = event.channel or (d.channel if d else None) or (policy.channel if policy else None)
            if not channel:
                log.warning(
                    "no Slack channel for alarm %s (function %s): not delivered", event.alarm_name, function
                )
                return None
            params: dict[str, Any] = {"text": text, "blocks": blocks, "unfurl_links": False}
            if thread is not None:
                params["reply_broadcast"] = alarming
            lane = lane_of(d.id if d is not None else None, channel)
            self._outbox.post(lane=lane, channel=channel, params=params, key=event.key, thread=thread)
            if d is not None:
                self._refresh_parent(d, now, alias=None, last=None)
            return None
        if d is not None and d.channel and d.thread_ts:
            try:
                response = self._client.chat_postMessage(
                    channel=d.channel,
                    thread_ts=d.thread_ts,
                    reply_broadcast=alarming,
                    text=text,
                    blocks=blocks,
                    unfurl_links=False,
                )
            finally:
                self._refresh_parent(d, now, alias=None, last=None)
            return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))
        channel = event.channel or (d.channel if d else None) or (policy.channel if policy else None)
        if not channel:
            log.warning(
                "no Slack channel for alarm %s (function %s): not delivered", event.alarm_name, function
            )
            return None
        response = self._client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, unfurl_links=False
        )
        return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))

    # ------------------------------------------------------------ helpers
    def _parent(
        self, d: Deployment, now: datetime, *, alias: AliasState | None, last: PeriodVerdict | None
    ) -> Blocks:
        url = self._dashboard_url(d) if self._dashboard_url else None
        return parent_blocks(
            d, now=now, alias=alias, last=last, dashboard_url=url, alarm_rollback_off=self._alarm_rollback_off
        )

    def _function_policy(self, function: str) -> FunctionPolicy:
        # A function dropped from the policy mid-canary still gets its messages, judged by the defaults.
        return self._policy.for_function(function) or FunctionPolicy.model_validate(self._policy.defaults)


def _alias_of(event: AnyEvent) -> AliasState | None:
    """The alias as the event read it, for the parent message (None: not read)."""
    if isinstance(event, TrafficChanged):
        return event.alias_after
    if isinstance(event, WatchAlert | PostMortem):
        return event.alias
    return None


def _verdicts(event: SoakReport) -> list[PeriodVerdict]:
    return [v for v in event.verdicts if isinstance(v, PeriodVerdict)]


def _last_verdict(event: SoakReport) -> PeriodVerdict | None:
    verdicts = _verdicts(event)
    return max(verdicts, key=lambda v: v.end) if verdicts else None


def _chart_params(event: SoakReport) -> dict[str, Any]:
    d = event.deployment
    return {
        "filename": f"soak-{d.id}-{event.number}.png",
        "title": f"Soak {event.number}/{event.total} · {d.key} · canary v{d.canary_version}",
        "alt_txt": f"p95 and error rate of v{d.canary_version} and v{d.stable_version} over the soak",
    }


def _fallback_text(blocks: Blocks) -> str:
    """The first line of the first text block, without mrkdwn bold: the notification people see."""
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict) and text.get("text"):
            first = str(text["text"]).split("\n", 1)[0].replace("*", "")
            return clip(first, FALLBACK_TEXT_MAX)
    return "canary-bot update"
