"""Build the alarm responder's Lambda zip: the bot package (without the demo) and the libraries the alarm
path imports — pydantic, pydantic-settings, PyYAML, slack_sdk (Block Kit models only; it is never called),
numpy and scipy (the judge's evidence module, imported by the policy model) — for the Lambda runtime in
deploy/template.yaml (python3.12, x86_64). Left out: slack_bolt, matplotlib, apscheduler, waitress,
cryptography, moto, and boto3/botocore, which the Lambda runtime provides. With scipy the zip is ~60 MB
(~190 MB unpacked): upload it to S3 (Lambda's limit for a zip from S3 is 250 MB unpacked).

    python deploy/build_lambda_zip.py [--out dist/canary-bot-responder.zip] [--policy FILE] [--no-deps]

--policy puts your policy file in the zip as policy.yaml; the template then sets CANARY_POLICY_FILE to it
(parameter PolicyInZip=true). Without it the responder knows only the embedded seed policy.

--no-deps packs only the bot's own code (a quick check of what goes in; not deployable alone).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPENDENCIES = [
    "pydantic>=2.7,<3",
    "pydantic-settings>=2.3,<3",
    "PyYAML>=6",
    "slack-sdk>=3.33,<4",
    "scipy>=1.11",  # and numpy with it
]
PYTHON_VERSION = "3.12"
PLATFORM = "manylinux2014_x86_64"
LEFT_OUT = ("slack_bolt", "matplotlib", "apscheduler", "waitress", "cryptography", "moto")
SKIP_PARTS = {"__pycache__", "demo"}
UNPACKED_LIMIT = 250 * 1024 * 1024  # Lambda's limit for a function's code, unpacked


POLICY_NAME = "policy.yaml"


def build(out: Path, *, deps: bool = True, policy: Path | None = None) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp)
        if deps:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target),
                 "--platform", PLATFORM, "--python-version", PYTHON_VERSION, "--implementation", "cp",
                 "--only-binary=:all:", *DEPENDENCIES],
                check=True,
            )  # fmt: skip
        for path in sorted((ROOT / "bot").rglob("*")):
            relative = path.relative_to(ROOT)
            if path.is_file() and not SKIP_PARTS.intersection(relative.parts) and path.suffix != ".pyc":
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / relative)
        if policy is not None:
            shutil.copy2(policy, target / POLICY_NAME)
        for name in LEFT_OUT:
            if (target / name).exists():
                raise SystemExit(f"{name} ended up in the zip: a dependency pulled it in")
        unpacked = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        if unpacked > UNPACKED_LIMIT:
            raise SystemExit(f"{unpacked / 1e6:.0f} MB unpacked: over Lambda's {UNPACKED_LIMIT / 1e6:.0f} MB")
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(target.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(target).as_posix())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "canary-bot-responder.zip")
    parser.add_argument("--policy", type=Path, help="the canary policy file the responder should use")
    parser.add_argument("--no-deps", action="store_true", help="pack the bot's code only")
    args = parser.parse_args()
    out = build(args.out, deps=not args.no_deps, policy=args.policy)
    print(f"{out} ({out.stat().st_size / 1_000_000:.1f} MB); handler: bot.lambda_responder.handler")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
