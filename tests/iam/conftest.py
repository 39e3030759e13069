"""Where the IAM tier finds the AWS calls it checks: the folder ``make test`` recorded them in
(``TENANTRY_AWS_CALLS``); else the recording of the last ``make test`` (``.aws-sam/aws-calls``)
when nothing it recorded has changed since; else a recording made now, by running the unit and
integration suites with recording on (as ``make test`` does, and as long)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from local import aws_calls
from local.template import REPO_ROOT

LAST_RECORDING = REPO_ROOT / ".aws-sam" / "aws-calls"
# What the recorded calls depend on: the functions' code, the layer, the template.
SOURCES = ("functions", "layers/core/tenantry", "template.yaml")
# The suites as make test runs them (its targets hold their pytest-xdist workers).
RECORDED_SUITES = (("unit",), ("e2e", "API_URL=", "ADMIN_KEY="))


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        root = REPO_ROOT / name
        paths = [root] if root.is_file() else root.rglob("*.py")
        newest = max([newest, *(path.stat().st_mtime for path in paths)])
    return newest


def _usable(folder: Path) -> bool:
    records = list(folder.glob("calls-*.jsonl"))
    return bool(records) and min(path.stat().st_mtime for path in records) > _newest_source()


def recorded_calls_folder() -> Path:
    """The folder of recorded calls to check (see the module's docstring)."""
    named = os.environ.get(aws_calls.ENV_VAR)
    if named:
        return Path(named)
    if _usable(LAST_RECORDING):
        return LAST_RECORDING
    for stale in LAST_RECORDING.glob("calls-*.jsonl"):
        stale.unlink()
    env = {**os.environ, aws_calls.ENV_VAR: str(LAST_RECORDING)}
    for target in RECORDED_SUITES:
        print(f"tests/iam: recording the AWS calls of make {target[0]} (as make test does)", file=sys.stderr)
        subprocess.run(  # noqa: S603 - this project's own test suites
            ["make", "--no-print-directory", *target],  # noqa: S607 - make from the PATH, as CI's
            cwd=REPO_ROOT,
            env=env,
            check=True,
        )
    return LAST_RECORDING
