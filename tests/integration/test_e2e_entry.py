"""``make e2e API_URL=… ADMIN_KEY=…`` works: the suite runs over HTTP against a stage it did not start,
skips what needs the local stack's internals (saying why) and offboards every tenant it onboarded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import REPO_ROOT, LocalStack


def test_the_suite_runs_against_a_stage_given_by_url_and_cleans_up(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given a running stack with the template's own settings, known only by its URL and admin key
    stage = stack_factory(tmp_path / "home", overlay=None, authorizer_ttl=None)
    env = {**os.environ, "TENANTRY_API_URL": stage.url, "TENANTRY_ADMIN_KEY": stage.admin_key}
    # When the integration suite runs against it, as make e2e does
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/integration"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Then it passes, over HTTP only
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and " failed" not in summary
    # And what needs the local stack is skipped with a reason
    assert "needs the local stack's embedded AWS" in result.stdout
    assert "local stack only: exact token-bucket counts" in result.stdout
    # And no tenant it onboarded is left
    listing = stage.request("GET", "/tenants", key=stage.admin_key)
    assert listing.status == 200 and listing.json["tenants"] == []
