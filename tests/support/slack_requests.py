"""Signed Slack requests live in canary_demo (the demo sends them too); tests import them from here."""

from canary_demo.slack_requests import *  # noqa: F403
from canary_demo.slack_requests import (
    APP_ID,
    CHANNEL_ID,
    CHANNEL_NAME,
    DEFAULT_RESPONSE_URL,
    SIGNING_SECRET,
    TEAM_ID,
    USER_ID,
    USER_NAME,
    SignedRequest,
    app_home_opened,
    block_actions,
    bolt_request,
    plain_text_values,
    sign,
    slash_command,
    url_verification,
    view_submission,
)

__all__ = [
    "APP_ID",
    "CHANNEL_ID",
    "CHANNEL_NAME",
    "DEFAULT_RESPONSE_URL",
    "SIGNING_SECRET",
    "TEAM_ID",
    "USER_ID",
    "USER_NAME",
    "SignedRequest",
    "app_home_opened",
    "block_actions",
    "bolt_request",
    "plain_text_values",
    "sign",
    "slash_command",
    "url_verification",
    "view_submission",
]
