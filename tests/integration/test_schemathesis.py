"""Schemathesis against a local stack: every operation, every check, a fixed seed, zero failures.

The run uses docs/openapi.json as published, the tenant key of an enterprise tenant (the tier
with room for the run's requests) on tenant routes and the admin key on admin routes. It fuzzes
every operation through the examples, coverage, fuzzing and stateful phases (the stateful phase
follows the links the document declares: publish → read). Any failure (a 5xx, an undocumented
status, a body that does not match the document, a valid request refused, an invalid one
accepted, missing auth not refused…) fails this test with schemathesis' report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import REPO_ROOT, LocalStack, start_test_stack

SEED = 20261124
# Per operation and phase; the whole run stays around a minute on two shared cores.
MAX_EXAMPLES = 25
HOOKS = Path(__file__).resolve().parent / "schemathesis" / "hooks.py"
# Checks schemathesis cannot apply to API Gateway: a method a resource lacks is 403 "Missing
# Authentication Token" on AWS, never 405 (docs/decisions.md, issue 12).
EXCLUDED_CHECKS = "unsupported_method"


def _config(home: Path) -> Path:
    refused = '["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "431"]'
    # Page tokens are opaque: a string that fits the schema but that the API never issued is a 400.
    accepted = '["2xx", "400", "401", "403", "404", "409", "429"]'
    text = f"""
seed = {SEED}
hooks = "{HOOKS}"
# The keys: hooks.py's RoleKeys (admin key on admin routes, tenant key elsewhere).

[generation]
max-examples = {MAX_EXAMPLES}

[checks]
{EXCLUDED_CHECKS}.enabled = false
# schemathesis' defaults, plus the local gateway's 431 for a request line and headers over 10 KB.
negative_data_rejection.expected-statuses = {refused}

[[operations]]
include-path-regex = "^/(tenants|stats)$"
checks.positive_data_acceptance.expected-statuses = {accepted}

[[operations]]
include-path-regex = "^/sessions"
checks.positive_data_acceptance.expected-statuses = {accepted}

[[operations]]
# A checkpoint past the stream's last position fits the schema and is refused: 422.
include-path-regex = "^/consumers/"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422", "429"]
"""
    path = home / "schemathesis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    # Given a local stack of its own, an enterprise tenant and the admin key
    stack: LocalStack = start_test_stack(tmp_path / "home")
    try:
        _, tenant_key = stack.create_tenant("enterprise")
        config = _config(tmp_path)
        env = {**os.environ, "ST_TENANT_KEY": tenant_key, "ST_ADMIN_KEY": stack.admin_key, "NO_COLOR": "1"}
        # When schemathesis runs every operation with every check
        result = subprocess.run(  # noqa: S603 - our own dev dependency's CLI
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(config),
                "run",
                str(REPO_ROOT / "docs" / "openapi.json"),
                "--url",
                stack.url,
                "--checks",
                "all",
                "--exclude-checks",
                EXCLUDED_CHECKS,
                "--seed",
                str(SEED),
                "--max-examples",
                str(MAX_EXAMPLES),
                "--report-dir",
                str(tmp_path / "report"),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        stack.stop()
    # Then it reports no failure and no error
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    # And it tested every operation of the document, in every phase
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected is not None and tested is not None, result.stdout[-3000:]
    assert selected.group(1) == selected.group(2) == tested.group(1)
    # And both keys worked: no operation answered only 401/403 (a wrong key would hide everything)
    assert "Authentication failed" not in result.stdout, result.stdout[-3000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in result.stdout, result.stdout[-3000:]
