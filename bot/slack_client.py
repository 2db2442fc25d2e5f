"""The Slack Web API client the bot uses, and the start-up check of the Slack settings.

Every Web API call goes through `make_web_client`, so rate limits (HTTP 429 + Retry-After), Slack's 500/503s
and dropped connections are retried the same way everywhere, a bounded number of times.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.config import Settings

SLACK_DEFAULT_API_URL = "https://slack.com/api/"

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a Web API call tries before its error reaches the caller.

    `max_retries` bounds each failure kind (rate limit, server error, connection error) separately: the state
    counter is shared, so the total attempts of one call never exceed `max_retries + 1`.
    """

    max_retries: int = 3
    # A Retry-After longer than this is not waited out: blocking a worker for minutes is worse than failing
    # the call and letting the caller (outbox, next tick) try later.
    max_retry_after: float = 30.0
    backoff: RetryIntervalCalculator = field(
        default_factory=lambda: BackoffRetryIntervalCalculator(backoff_factor=0.5)
    )
    sleep: Sleep = time.sleep
    # Spreads replicas that were rate-limited together; tests pass `lambda: 0.0`.
    jitter: Callable[[], float] = random.random


class SlackSettingsError(Exception):
    """A Slack setting that cannot work; str() is one line naming the environment variable."""


def normalise_api_url(url: str | None) -> str:
    """Return the Web API base URL as slack_sdk wants it: ending in "/api/".

    "http://localhost:8080", ".../", ".../api" and ".../api/" all become "http://localhost:8080/api/".
    """
    if not url:
        return SLACK_DEFAULT_API_URL
    base = url.strip().rstrip("/")
    if not base.endswith("/api"):
        base += "/api"
    return base + "/"


def make_retry_handlers(policy: RetryPolicy) -> list[RetryHandler]:
    """The retry handlers for a WebClient: 429 first (it carries its own wait), then 5xx, then connections."""
    return [
        _RateLimitRetryHandler(policy),
        _ServerErrorRetryHandler(policy),
        _ConnectionErrorRetryHandler(policy),
    ]


def make_web_client(
    token: str,
    *,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: int = 30,
) -> WebClient:
    """A WebClient for `token` against `base_url` (SLACK_API_URL; default Slack), retrying transient failures.

    Note that a 500 on chat.postMessage may mean the message was posted anyway; callers that must not post
    twice de-duplicate (the outbox keys messages), the client cannot.
    """
    policy = retry or RetryPolicy()
    return WebClient(
        token=token,
        base_url=normalise_api_url(base_url),
        timeout=timeout,
        retry_handlers=make_retry_handlers(policy),
    )


def validate_slack_settings(settings: Settings, *, socket_mode: bool) -> None:
    """Fail fast, before connecting, on Slack settings that cannot work; raise SlackSettingsError."""
    token = (settings.slack_bot_token or "").strip()
    if not token:
        raise SlackSettingsError(
            "SLACK_BOT_TOKEN is not set (the bot token, xoxb-…, from OAuth & Permissions)"
        )
    if not token.startswith("xoxb-"):
        raise SlackSettingsError(
            f"SLACK_BOT_TOKEN must be a bot token starting with 'xoxb-' (got '{_prefix(token)}…')"
        )
    if socket_mode:
        app_token = (settings.slack_app_token or "").strip()
        if not app_token.startswith("xapp-"):
            found = f"got '{_prefix(app_token)}…'" if app_token else "it is not set"
            raise SlackSettingsError(
                "SLACK_APP_TOKEN must be an app-level token starting with 'xapp-' for Socket Mode "
                f"({found}; create one under Basic Information with connections:write)"
            )
    elif not (settings.slack_signing_secret or "").strip():
        raise SlackSettingsError(
            "SLACK_SIGNING_SECRET is not set (needed in HTTP mode to verify requests; see Basic Information)"
        )
    if settings.slack_api_url is not None:
        parts = urlsplit(settings.slack_api_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SlackSettingsError(
                f"SLACK_API_URL must be an http(s) URL such as https://slack.com/api/ "
                f"(got '{settings.slack_api_url}')"
            )


def _prefix(secret: str) -> str:
    """Enough of a token to see its kind, never enough to leak it."""
    return secret.split("-", 1)[0][:5] if "-" in secret else secret[:4]


class _RateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, but with an injectable sleep and a cap on how long a Retry-After is obeyed."""

    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(max_retry_count=policy.max_retries)
        self._policy = policy

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        return _retry_after(response) <= self._policy.max_retry_after

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        assert response is not None  # _can_retry only accepts responses
        state.next_attempt_requested = True
        self._policy.sleep(_retry_after(response) + self._policy.jitter())
        state.increment_current_attempt()


class _InjectedSleep:
    """slack_sdk's backoff, minus its hard-wired time.sleep (tests inject a sleep that does not wait)."""

    interval_calculator: RetryIntervalCalculator
    _sleep: Sleep

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self._sleep(self.interval_calculator.calculate_sleep_duration(state.current_attempt))
        state.increment_current_attempt()


class _ServerErrorRetryHandler(_InjectedSleep, ServerErrorRetryHandler):
    # slack_sdk retries 500 and 503; 502 and 504 come from the load balancers in front of Slack, just as
    # transient.
    RETRIED_STATUSES = frozenset({500, 502, 503, 504})

    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(max_retry_count=policy.max_retries, interval_calculator=policy.backoff)
        self._sleep = policy.sleep

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code in self.RETRIED_STATUSES


class _ConnectionErrorRetryHandler(_InjectedSleep, ConnectionErrorRetryHandler):
    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(max_retry_count=policy.max_retries, interval_calculator=policy.backoff)
        self._sleep = policy.sleep


def _retry_after(response: HttpResponse) -> float:
    """Seconds from the Retry-After header; 1 s when Slack leaves it out or sends something unparsable."""
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            value = values if isinstance(values, str) else values[0]
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 1.0
