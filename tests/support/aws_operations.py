"""Which AWS operations canary-bot's own code makes, recorded across the test suite with botocore's event hooks,
and the IAM policy the README grants, so a test can compare the two (missing → the bot fails in production;
unused → the README grants more than the bot needs).

Every botocore client created during the tests gets a `before-parameter-build` handler (emitted for every call,
moto's and botocore Stubber's included; Stubber answers on `before-call`, which stops at the first answer). A call
counts when the nearest caller outside boto3/botocore is a module of `bot/` — test set-up, the demo's simulated
world (`canary_demo/`), the seed helpers (`canary_demo/seed.py`) and moto itself are the world, not the bot.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import botocore.session

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
NOT_THE_BOT = (BOT / "demo", BOT / "aws" / "seed.py", BOT / "fakes")
_LIBRARIES = tuple(
    str(Path(m.__file__).resolve().parent) for m in (sys.modules["botocore"], __import__("boto3"))
)

_lock = threading.Lock()
_used: dict[str, str] = {}  # "service:Operation" → the bot module that first made it
_installed = False


def _caller() -> Path | None:
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_LIBRARIES) and filename != __file__:
            return Path(filename).resolve()
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _is_bot(path: Path) -> bool:
    return path.is_relative_to(BOT) and not any(
        path == other or path.is_relative_to(other) for other in NOT_THE_BOT
    )


# Actions IAM checks beyond the operation's own: CloudWatch authorizes the `Tags` of PutMetricAlarm (and any
# create-with-tags) as cloudwatch:TagResource; without it the whole call is denied.
TAG_ON_CREATE = frozenset({"cloudwatch"})


def _record(params: Any = None, model: Any = None, **_: Any) -> None:
    if model is None:
        return
    caller = _caller()
    if caller is None or not _is_bot(caller):
        return
    service = model.service_model.service_name
    actions = [f"{service}:{model.name}"]
    if service in TAG_ON_CREATE and isinstance(params, dict) and params.get("Tags"):
        actions.append(f"{service}:TagResource")
    with _lock:
        for action in actions:
            _used.setdefault(action, str(caller.relative_to(ROOT)))


def install() -> None:
    """Hook every botocore client created from now on (boto3.client and bot.aws.clients alike)."""
    global _installed
    if _installed:
        return
    _installed = True
    original = botocore.session.Session.create_client

    def create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-parameter-build", _record)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]


def used() -> dict[str, str]:
    with _lock:
        return dict(_used)


def write(path: Path) -> None:
    path.write_text(json.dumps(dict(sorted(used().items())), indent=2) + "\n")


def readme_policy_actions(readme: Path = ROOT / "README.md") -> set[str]:
    """The actions of the IAM policy block in the README (the JSON after 'IAM for the bot's role')."""
    text = readme.read_text()
    match = re.search(r"IAM for the bot's role.*?```json\n(.*?)```", text, re.S)
    if match is None:
        raise AssertionError('README has no IAM policy block after "IAM for the bot\'s role"')
    statement = json.loads(match.group(1))
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)
