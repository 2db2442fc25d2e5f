"""Suite-wide safety: no test can reach a real AWS account or Slack workspace."""

from __future__ import annotations

import os

import pytest

_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "MPLBACKEND": "Agg",
}
for _key, _value in _FAKE_ENV.items():
    os.environ[_key] = _value
for _key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "CANARY_POLICY_FILE"):
    os.environ.pop(_key, None)


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


# ---------------------------------------------------------------- AWS operations the bot makes (README's IAM)
from pathlib import Path  # noqa: E402

from tests.support import aws_operations  # noqa: E402

aws_operations.install()
IAM_TEST = "test_the_readme_iam_policy_grants_exactly_the_operations_the_bot_makes"
OPERATIONS_FILE = Path(__file__).resolve().parents[1] / ".aws-operations.json"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the IAM comparison last, and tell it whether every test of the suite ran before it."""
    last = [item for item in items if item.name == IAM_TEST]
    items[:] = [item for item in items if item.name != IAM_TEST] + last
    modules = {Path(str(item.fspath)).name for item in items}
    every_module = {p.name for p in Path(__file__).parent.glob("test_*.py")}
    config.stash[FULL_SUITE] = (
        modules == every_module
        and not config.option.keyword
        and not config.option.markexpr
        and not (config.getoption("deselect", None) or [])
        and not any("::" in str(arg) for arg in config.args)
    )


FULL_SUITE = pytest.StashKey[bool]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The operations recorded, for people to read (the comparison itself is a test)."""
    if session.config.stash.get(FULL_SUITE, False):
        aws_operations.write(OPERATIONS_FILE)


@pytest.fixture
def full_suite(request: pytest.FixtureRequest) -> bool:
    return request.config.stash.get(FULL_SUITE, False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: crash and outage tests of the real `serve` process (run by default in make test)"
    )
