"""The small interfaces the service talks to. Each has a real adapter and an in-memory fake.

Errors are part of the contract: adapters translate AWS errors into the exceptions below, so the
service never sees botocore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from bot.intents import Intent
from bot.model import AliasState, AuditRecord, DeployLock, Deployment, PeriodFigures, Thresholds
from bot.outbox_model import OutboxMessage
from bot.preflight import Fact, PreflightFacts, PreflightRequest


# ---------------------------------------------------------------- errors
class CanaryError(Exception):
    """Base of every error the bot explains to a person."""


class NotFound(CanaryError):
    """A function, alias or version does not exist."""


class FunctionNotFound(NotFound):
    pass


class AliasNotFound(NotFound):
    pass


class VersionNotFound(NotFound):
    pass


class AliasDrift(CanaryError):
    """The alias changed under us (RevisionId mismatch): nothing was written, nothing is retried."""


class PublishConflict(CanaryError):
    """$LATEST changed between our configuration update and the publish: nothing was published."""


class AwsFailure(CanaryError):
    """AWS refused or failed a call for a reason other than the above (throttling after retries, access...)."""


class InvalidChange(CanaryError, ValueError):
    """A requested routing or configuration change is malformed; refused before any call to AWS."""


class LiveDeploymentExists(CanaryError):
    """The store already holds a live deployment for this function:alias."""


class IntentInProgress(CanaryError):
    """Another traffic change of the same deployment is still being applied (its intent is open)."""


class StaleDeployment(CanaryError):
    """Someone saved the deployment since we read it (optimistic concurrency)."""


class UnknownDeployment(CanaryError, ValueError):
    """A row that belongs to a deployment (its figures) names one the store does not hold."""


# ---------------------------------------------------------------- traffic
class PublishedVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    function: str
    version: str
    code_sha256: str
    description: str = ""


class TrafficPort(Protocol):
    """Lambda alias routing. Every write is guarded by the RevisionId the caller read."""

    def get_alias(self, function: str, alias: str) -> AliasState:
        """Raises FunctionNotFound / AliasNotFound."""
        ...

    def version_exists(self, function: str, version: str) -> bool:
        """Raises FunctionNotFound."""
        ...

    def update_routing(
        self, function: str, alias: str, *, version: str, weights: Mapping[str, float], revision_id: str
    ) -> AliasState:
        """One UpdateAlias with RevisionId=revision_id. weights={} clears the routing config.

        Raises AliasDrift when the alias's RevisionId is no longer revision_id (nothing written).
        """
        ...

    def publish_version(
        self,
        function: str,
        *,
        set_env: Mapping[str, str],
        unset_env: Sequence[str],
        description: str,
    ) -> PublishedVersion:
        """Update $LATEST's environment, wait for the update, publish guarded by CodeSha256 and RevisionId."""
        ...

    def environment_keys(self, function: str, version: str) -> frozenset[str]:
        """The names (never the values) of the environment variables a published version carries."""
        ...

    def publish_fallback(
        self, function: str, *, from_version: str, unset_env: Sequence[str], description: str
    ) -> PublishedVersion:
        """Publish the code of `from_version` with its environment minus `unset_env`, once per description.

        A version already published with exactly `description` is returned as is (a retry after a crash
        publishes nothing). Otherwise $LATEST must carry the same code as `from_version` (PublishConflict if
        not, nothing written); $LATEST's environment becomes `from_version`'s minus `unset_env`, and the
        version is published guarded by `from_version`'s CodeSha256 and $LATEST's RevisionId.
        """
        ...


# ---------------------------------------------------------------- metrics
class WindowRequest(BaseModel):
    """Figures wanted for one deployment: both versions, per period, over [start, end)."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    function: str
    alias: str
    canary_version: str
    stable_version: str
    start: datetime
    end: datetime
    period_seconds: int = 300
    log_group: str | None = None
    cache_query: str | None = None  # Logs Insights query; None = the default seed query


class MetricsPort(Protocol):
    def fetch(self, requests: Sequence[WindowRequest]) -> dict[str, list[PeriodFigures]]:
        """Per deployment id, one PeriodFigures per period (oldest first). One GetMetricData round for all."""
        ...


# ---------------------------------------------------------------- alarms
class AlarmsPort(Protocol):
    def create_canary_alarms(
        self,
        deployment: Deployment,
        *,
        topic_arn: str | None,
        thresholds: Thresholds,
        period_seconds: int = 300,
        evaluation_periods: int = 2,
        log_group: str | None = None,
    ) -> list[str]:
        """Create the canary's alarms (a metric whose threshold is None gets none); return their names.

        With a log group: also the cache hit rate's log metric filters and its metric-math alarm."""
        ...

    def delete_alarms(self, names: Sequence[str]) -> None: ...

    def delete_canary_alarms(self, deployment: Deployment, *, log_group: str | None = None) -> None:
        """Delete the alarms create_canary_alarms made for this deployment, and with a log group its cache
        metric filters (gone already is fine)."""
        ...

    def alarms_in_alarm(self, function: str) -> list[str]:
        """Names of alarms about this function currently in ALARM."""
        ...

    def put_dashboard(
        self, deployment: Deployment, *, thresholds: Thresholds | None = None, log_group: str | None = None
    ) -> str:
        """Create or update the deployment's dashboard; return its console URL.

        thresholds draws the rollback lines; log_group defaults to /aws/lambda/<function>.
        """
        ...


# ---------------------------------------------------------------- preflight
class PreflightPort(Protocol):
    """Gathers the facts the pre-deployment checks read (bot.preflight evaluates them). Read-only."""

    def gather(self, request: PreflightRequest, needs: frozenset[Fact]) -> PreflightFacts:
        """Only the facts in `needs`. A fact AWS would not give (denied, throttled, not found where that
        is not itself the answer) is left unset with the reason in PreflightFacts.unknown: never raises
        for one fact; raises AwsFailure only when nothing at all could be asked."""
        ...


# ---------------------------------------------------------------- notifications beyond Slack
class TopicGone(AwsFailure):
    """SNS refused a Publish in a way no retry can fix: the topic does not exist, or the message is invalid."""


class TopicPublisher(Protocol):
    """SNS Publish (the alert fan-out; the outbox's drainer calls it)."""

    def publish(self, topic_arn: str, *, subject: str, message: str, dedup_id: str | None = None) -> str:
        """One message; returns its MessageId. `dedup_id` becomes a FIFO topic's MessageDeduplicationId (SNS
        drops a second publish with the same id within 5 minutes); standard topics have no such thing. Raises
        TopicGone when retrying cannot help, AwsFailure otherwise."""
        ...


# ---------------------------------------------------------------- store
class StorePort(Protocol):
    def create(self, deployment: Deployment) -> Deployment:
        """Insert. Raises LiveDeploymentExists if a live one holds the same function:alias."""
        ...

    def save(self, deployment: Deployment) -> Deployment:
        """Update when deployment.revision matches the stored one; returns it with revision + 1.

        Raises StaleDeployment otherwise, and LiveDeploymentExists if it would make a second live one.
        """
        ...

    def record_thread(self, deployment_id: str, channel: str, thread_ts: str) -> None:
        """Set the Slack thread once, without bumping the revision; later saves keep it."""
        ...

    def get(self, deployment_id: str) -> Deployment | None: ...

    def live_for(self, function: str, alias: str) -> Deployment | None: ...

    def list_live(self) -> list[Deployment]: ...

    def list_watching(self, now: datetime) -> list[Deployment]:
        """Promoted deployments whose post-promotion watch ends after `now` (watch_until > now)."""
        ...

    def history(self, function: str, alias: str | None = None, limit: int = 20) -> list[Deployment]:
        """Newest first."""
        ...

    def append_audit(self, record: AuditRecord) -> None: ...

    def audit_for(self, deployment_id: str) -> list[AuditRecord]:
        """Oldest first."""
        ...

    def claim(self, key: str, now: datetime) -> bool:
        """Idempotency: True the first time a key is claimed, False ever after (until released)."""
        ...

    def is_claimed(self, key: str) -> bool: ...

    def release(self, key: str) -> None:
        """Undo a claim whose work failed, so a retry of the same message or click can run."""
        ...

    def save_figures(self, deployment_id: str, figures: Sequence[PeriodFigures]) -> None:
        """Upsert figures by period start. Raises UnknownDeployment when the deployment is not stored."""
        ...

    def figures_for(self, deployment_id: str) -> list[PeriodFigures]:
        """Oldest first."""
        ...

    # intents: one open per deployment
    def open_intent(
        self, intent: Intent, *, supersede: bool = False, deployment_revision: int | None = None
    ) -> tuple[Intent, list[Intent]]:
        """Insert an open intent (superseding the deployment's open one when asked); returns it and the
        superseded ones. Raises IntentInProgress when one is open and supersede is False, StaleDeployment
        when deployment_revision is given and no longer the stored one."""
        ...

    def complete_intent(self, intent: Intent, deployment: Deployment, audit: AuditRecord) -> Deployment:
        """Deployment saved (compare-and-set), audit appended and intent saved in one transaction."""
        ...

    def save_intent(self, intent: Intent) -> Intent: ...

    def get_intent(self, intent_id: str) -> Intent | None: ...

    def open_intent_for(self, deployment_id: str) -> Intent | None: ...

    def open_intents(self) -> list[Intent]:
        """Rollbacks first, then oldest first."""
        ...

    def unfinished_intents(self) -> list[Intent]:
        """Open ones and recorded ones (alias write recorded, follow-up not done); rollbacks first."""
        ...

    def intents_for(self, deployment_id: str) -> list[Intent]: ...

    # leases with fencing tokens
    def acquire_lease(self, name: str, owner: str, now: datetime, ttl_seconds: float) -> int | None:
        """The fencing token while `owner` holds `name` until now + ttl; None while another holds it."""
        ...

    def release_lease(self, name: str, owner: str) -> None: ...

    def holds_lease(self, name: str, owner: str, token: int, now: datetime) -> bool: ...

    # outbox
    def enqueue(self, message: OutboxMessage) -> bool:
        """Add unless the key exists; True when added."""
        ...

    def outbox_heads(self, now: datetime, limit: int = 50) -> list[OutboxMessage]:
        """The first pending message of each lane, when due."""
        ...

    def outbox_message(self, key: str) -> OutboxMessage | None: ...

    def outbox_pending(self) -> int: ...

    def save_outbox(self, message: OutboxMessage) -> OutboxMessage: ...

    # deploy locks (bot.locks): one per function:alias:version ('*' for a person's lock on the whole alias)
    def put_lock(self, lock: DeployLock) -> None:
        """Add or replace the lock with the same key."""
        ...

    def locks_for(self, function: str, alias: str) -> list[DeployLock]:
        """Oldest first."""
        ...

    def remove_locks(self, function: str, alias: str) -> list[DeployLock]:
        """Remove every lock on function:alias; return what was removed."""
        ...

    def list_locks(self) -> list[DeployLock]: ...

    # the last membership seen of each Slack user group
    def save_group_members(self, group_id: str, members: Sequence[str], now: datetime) -> None: ...

    def group_members(self, group_id: str) -> tuple[frozenset[str], datetime] | None: ...


# ---------------------------------------------------------------- clock
class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""
        ...
