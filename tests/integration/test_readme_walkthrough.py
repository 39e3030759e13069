"""The README's curl walk-through works exactly as written, against a fresh local stack."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import REPO_ROOT, LocalStack

README = REPO_ROOT / "README.md"


def walkthrough_script() -> str:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end -->")[0]
    return block.strip().removeprefix("```bash").removesuffix("```")


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_readme_walkthrough(stack_factory: Callable[..., LocalStack], tmp_path: Path) -> None:
    # Given a fresh stack with the template's own settings (no overlay, the real TTL)
    stack = stack_factory(tmp_path / "home", overlay=None, authorizer_ttl=None)
    # When the README's commands run, with only its URL and state folder pointed at this stack
    script = walkthrough_script().replace("http://127.0.0.1:3000", stack.url)
    script = script.replace(".tenantry/admin-key", str(stack.home / "admin-key"))
    result = subprocess.run(  # noqa: S603 - the README's own script
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then every step does what the README says
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert '"tenant_id":"acme"' in lines[0] and '"tier":"basic"' in lines[0]
    assert re.fullmatch(r"key_[0-9a-f]{16}", lines[1])
    statuses = lines[2].split()
    assert statuses[0] == "200" and statuses[-1] == "429"
    throttled = json.loads(lines[3])
    assert throttled["message"] == "Too Many Requests" and throttled["error"] == "throttled"
    assert throttled["request_id"]
