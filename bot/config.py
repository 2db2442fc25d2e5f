"""Process settings (environment) and the canary policy (a YAML file; defaults are the seed's numbers)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.model import Thresholds
from bot.preflight import CHECKS, unknown_checks
from bot.units import TYPED, Duration, Percent

_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


class Settings(BaseSettings):
    """Everything the process reads from its environment."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    policy_file: Path | None = Field(default=None, validation_alias="CANARY_POLICY_FILE")
    store_url: str = Field(default="sqlite:///canary-bot.db", validation_alias="CANARY_STORE_URL")
    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    # boto3 reads AWS_ENDPOINT_URL itself; kept here so the demo and `status` can show it.
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    # Slack (used by `serve`)
    slack_bot_token: str | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(default=None, validation_alias="SLACK_API_URL")
    port: int = Field(default=3000, validation_alias="PORT")
    # Alarm intake
    alarm_topic_arn: str | None = Field(default=None, validation_alias="CANARY_ALARM_TOPIC_ARN")
    alarm_queue_url: str | None = Field(default=None, validation_alias="CANARY_ALARM_QUEUE_URL")
    sns_allowed_topics: str = Field(default="", validation_alias="CANARY_SNS_ALLOWED_TOPICS")
    # Where alarms about functions the policy does not list are posted.
    alert_channel: str | None = Field(default=None, validation_alias="CANARY_ALERT_CHANNEL")
    # The control loop (durable actions): how often it runs, how long a claim on a deployment lasts when its
    # holder dies, and after how many failed attempts a traffic change is escalated to the approvers.
    tick_every: Duration = Field(default=timedelta(minutes=1), validation_alias="CANARY_TICK_EVERY")
    reconcile_every: Duration = Field(default=timedelta(seconds=5), validation_alias="CANARY_RECONCILE_EVERY")
    lease_ttl: Duration = Field(default=timedelta(seconds=30), validation_alias="CANARY_LEASE_TTL")
    escalate_after: int = Field(default=3, ge=1, le=100, validation_alias="CANARY_ESCALATE_AFTER")

    def allowed_topics(self) -> set[str]:
        topics = {t.strip() for t in self.sns_allowed_topics.split(",") if t.strip()}
        if self.alarm_topic_arn:
            topics.add(self.alarm_topic_arn)
        return topics


class StatisticalCheck(BaseModel):
    """Mann-Whitney U on per-minute series of canary vs stable (as Kayenta does)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    confidence: float = Field(default=0.98, gt=0, lt=1)


class CanaryDefaults(BaseModel):
    """Every knob of a canary; the defaults are the seed runbook's numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: tuple[Percent, ...] = (0.05,)
    soak: Duration = timedelta(hours=1)
    report_every: Duration = timedelta(minutes=15)
    period: Duration = timedelta(minutes=5)
    evaluation_periods: int = Field(default=2, ge=1)
    min_invocations: int = Field(default=200, ge=0)  # judge: threshold only
    # How periods are judged. "sequential": counts as binomial evidence at `confidence` (bot.evidence);
    # "threshold": the seed's plain rule, each period's figures against the table.
    judge: Literal["sequential", "threshold"] = "sequential"
    confidence: Percent = Field(default=0.95, gt=0.5, lt=1)  # "95%" or 0.95
    on_breach: Literal["rollback", "alert"] = "rollback"
    approval_timeout: Duration = timedelta(minutes=30)
    on_approval_timeout: Literal["rollback", "hold"] = "rollback"
    auto_promote: bool = False
    two_person_rule: bool = True
    watch_after_promote: Duration = timedelta(hours=24)
    # A rollback locks new canaries of the version it undid until `unlock` (or --override-lock REASON).
    lock_after_rollback: bool = True
    thresholds: Thresholds = Thresholds()
    statistical: StatisticalCheck = StatisticalCheck()
    # The pre-deployment checklist (bot.preflight): named checks run by `preflight` and before every `start`
    # (`function` always runs). A 🔴 blocks the start unless an approver overrides it with a reason.
    preflight: tuple[str, ...] = ()
    cache_url_env: str = "REDIS_URL"  # the environment variable the redis_url / cache_reachable checks read
    billing_alarm_usd: float = Field(default=50.0, gt=0)  # the billing_alarm check: an alarm at most this
    # SNS topics that also get the alarm alert and the rollback messages (bot.sns_fanout).
    notify_topics: tuple[str, ...] = ()

    @field_validator("preflight")
    @classmethod
    def _known_checks(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        missing = unknown_checks(names)
        if missing:
            raise ValueError(
                f"unknown preflight check(s) {', '.join(missing)}; known: {', '.join(sorted(CHECKS))}"
            )
        return names

    @field_validator("notify_topics")
    @classmethod
    def _topic_arns(cls, topics: tuple[str, ...]) -> tuple[str, ...]:
        for topic in topics:
            if not _TOPIC_ARN.match(topic):
                raise ValueError(f"{topic!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        return topics

    @field_validator("steps")
    @classmethod
    def _steps_rise_inside_0_100(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if not steps:
            raise ValueError("needs at least one step")
        for weight in steps:
            if not 0 < weight < 1:
                raise ValueError("each step must be strictly between 0% and 100%")
        if list(steps) != sorted(set(steps)):
            raise ValueError("steps must rise (e.g. [5%, 25%, 50%])")
        return steps


class FunctionPolicy(CanaryDefaults):
    """Resolved policy of one function: defaults with its overrides applied."""

    alias: str = "production"
    channel: str | None = None
    approvers: tuple[str, ...] = ()  # Slack user IDs (U…/W…) or user-group IDs (S…)
    deployers: tuple[str, ...] = ()  # who may start; empty = anyone in an allowed channel
    allowed_channels: tuple[str, ...] = ()  # empty = the function's channel only (or any, if no channel)
    log_group: str | None = None
    cache_query: str | None = None
    service_name: str | None = None  # human name for messages ("LEGO API")
    secret: str | None = None  # the Secrets Manager secret the `secret` preflight check looks for


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: dict[str, Any] = Field(default_factory=dict)
    functions: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def for_function(self, function: str, *, typed: bool = False) -> FunctionPolicy | None:
        """The merged policy, or None when the function is not listed. `typed`: the data came from a file
        people wrote, so percentages must carry their % sign (see bot.units.parse_percent)."""
        if function not in self.functions:
            return None
        merged = _deep_merge(self.defaults, self.functions[function] or {})
        return FunctionPolicy.model_validate(merged, context=TYPED if typed else None)

    def function_names(self) -> list[str]:
        return sorted(self.functions)


class PolicyError(Exception):
    """A policy file that cannot be used; str() names the file, the key path and the reason."""


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# The seed runbook as a policy: used when CANARY_POLICY_FILE is not set.
EMBEDDED_POLICY: dict[str, Any] = {
    "defaults": {},
    "functions": {
        "production-lego-api": {
            "alias": "production",
            "channel": "#deploys",
            "approvers": ["S0SREONCALL"],
            "log_group": "/aws/lambda/production-lego-api",
            "service_name": "LEGO API",
        }
    },
}


def load_policy(path: Path | None) -> Policy:
    """Load and fully validate a policy (every function resolved once), or raise PolicyError."""
    source = "embedded default policy"
    if path is None:
        raw: Any = EMBEDDED_POLICY
    else:
        source = str(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise PolicyError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise PolicyError(f"{source}: (top level): expected a mapping with 'defaults' and 'functions'")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_explain(source, exc, prefix=())) from exc
    try:
        CanaryDefaults.model_validate(policy.defaults, context=TYPED)
    except ValidationError as exc:
        raise PolicyError(_explain(source, exc, prefix=("defaults",))) from exc
    for name in policy.function_names():
        try:
            policy.for_function(name, typed=True)
        except ValidationError as exc:
            raise PolicyError(_explain(source, exc, prefix=("functions", name))) from exc
    return policy


def _explain(source: str, exc: ValidationError, prefix: tuple[str, ...]) -> str:
    first = exc.errors()[0]
    loc = tuple(str(part) for part in first["loc"])
    path = ".".join(prefix + loc) or "(top level)"
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "unknown key (misspelt?)"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {path}: {reason}{more}"
