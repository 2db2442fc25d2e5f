"""The dependency floors in pyproject.toml are the versions `make test-floors` installs and tests."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import botocore.session
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*(?P<floor>[0-9][0-9A-Za-z.]*)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["demo"]]
    floors = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        assert match, f"{requirement!r}: every runtime dependency needs a >= floor"
        floors[_normal(match.group("name"))] = match.group("floor")
    return floors


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "floors.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_normal(name)] = version.strip()
    return pins


def test_floors_txt_pins_exactly_the_floors_of_pyproject() -> None:
    pinned = {name: Version(v) for name, v in _pinned().items()}
    assert pinned == {name: Version(v) for name, v in _pyproject_floors().items()}


def test_the_makefile_has_the_floors_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test-floors:", makefile, re.MULTILINE) and "-c floors.txt" in makefile


def test_the_installed_botocore_knows_the_sqs_parameter_the_alarm_queue_sends() -> None:
    model = botocore.session.get_session().get_service_model("sqs")
    assert "MessageSystemAttributeNames" in model.operation_model("ReceiveMessage").input_shape.members
