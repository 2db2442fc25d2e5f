"""The fake Slack Web API lives in canary_demo (the demo runs on it too); tests import it from here."""

from canary_demo.fake_slack import *  # noqa: F403
from canary_demo.fake_slack import FakeSlack, PostedMessage, RecordedCall, UploadedFile

__all__ = ["FakeSlack", "PostedMessage", "RecordedCall", "UploadedFile"]
