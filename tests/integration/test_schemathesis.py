"""Schemathesis against a local stack: every operation, every check, a fixed seed, zero failures.

The run uses docs/openapi.json as published, the tenant key of an enterprise tenant (the tier
with room for the run's requests) on tenant routes and the admin key on admin routes. It fuzzes
every operation through the examples, coverage, fuzzing and stateful phases (the stateful phase
follows the links the document declares: onboard → read, patch, offboard; publish → read). Any
failure (a 5xx, an undocumented status, a body that does not match the document, a valid request
refused, an invalid one accepted, missing auth not refused…) fails this test with schemathesis'
report. It runs twice: on a plain stack, and, with a smaller budget, on one where DynamoDB cancels
a fifth of the transactions for conflicts and throttles a fifth of all calls (``FAULTS``), which
is where AWS's failures meet the contract.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO_ROOT, LocalStack, start_test_stack

SEED = 20261124
# Per operation and phase; the whole run stays around a minute on two shared cores.
MAX_EXAMPLES = 25
# The run under injected faults: the same checks, generated cases only (fuzzing and stateful: the
# plain run covers the document's examples and the boundaries) and fewer of them, since here an
# answer costs retries and botocore's backoff (a few seconds for an onboarding).
FAULTS = "conflict=20%,throttle=20%"
MAX_EXAMPLES_UNDER_FAULTS = 3
PHASES = ("Examples", "Coverage", "Fuzzing", "Stateful")
PHASES_UNDER_FAULTS = ("Fuzzing", "Stateful")
HOOKS = Path(__file__).resolve().parent / "schemathesis" / "hooks.py"
# Checks schemathesis cannot apply to API Gateway: a method a resource lacks is 403 "Missing
# Authentication Token" on AWS, never 405 (docs/decisions.md, issue 12).
EXCLUDED_CHECKS = "unsupported_method"


def _config(home: Path, max_examples: int, faults: bool) -> Path:
    refused = '["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "431"]'
    # Under faults, DynamoDB throttled past every retry is 503 service_busy with Retry-After (the
    # contract: docs/openapi.json, design §3): a valid request may get it, so may any request. And
    # the authorizer's key lookup throttled past its four attempts is API Gateway's 500 (an
    # authorizer cannot answer anything else; documented).
    server_errors = ', "500", "503"' if faults else ""
    # An answer within API Gateway's 29 s is an answer: under faults an offboarding's retries
    # (botocore's backoff included) may pass schemathesis' default limit of 10 s.
    response_time = 29 if faults else 10
    # Page tokens are opaque: a string that fits the schema but that the API never issued is a 400.
    accepted = f'["2xx", "400", "401", "403", "404", "409", "429"{server_errors}]'
    text = f"""
seed = {SEED}
hooks = "{HOOKS}"
# The keys: hooks.py's RoleKeys (admin key on admin routes, tenant key elsewhere).
# API Gateway's integration timeout, not schemathesis' 10 s: under faults an admin operation's
# retries (botocore's backoff included) may take longer and still answer.
request-timeout = 30

[generation]
max-examples = {max_examples}

[phases.examples]
enabled = {"false" if faults else "true"}

[phases.coverage]
enabled = {"false" if faults else "true"}

[checks]
{EXCLUDED_CHECKS}.enabled = false
# schemathesis' defaults, plus the local gateway's 431 for a request line and headers over 10 KB.
negative_data_rejection.expected-statuses = {refused}
not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx"{server_errors}]
max_response_time = {response_time}

[[operations]]
include-path-regex = "^/(tenants|stats)$"
checks.positive_data_acceptance.expected-statuses = {accepted}

[[operations]]
include-path-regex = "^/sessions"
checks.positive_data_acceptance.expected-statuses = {accepted}

[[operations]]
# Two parameters that each fit the schema and together are refused, 422 naming one (JSON Schema
# cannot relate two parameters; the document says it in words): `to` before `from` on GET /events,
# `from` beside `consumer` on GET /events/stream.
# (one filter: separate include filters are alternatives, not conditions that must all hold)
include-name-regex = "^GET /events(/stream)?$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422", "429"{server_errors}]

[[operations]]
# A checkpoint past the stream's last position fits the schema and is refused: 422.
include-name-regex = "^PUT /consumers/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422", "429"{server_errors}]
"""
    path = home / "schemathesis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _onboard(stack: LocalStack) -> str:
    """An enterprise tenant's key; under faults the API may answer 503 service_busy: sent again."""
    for _ in range(20):
        answer = stack.request(
            "POST", "/tenants", key=stack.admin_key, body={"name": "Fuzz", "tier": "enterprise"}
        )
        if answer.status == 201:
            return str(answer.json["api_key"])
        assert answer.status == 503, answer.raw
    raise AssertionError("onboarding never succeeded")


@pytest.mark.parametrize(
    ("faults", "max_examples"),
    [("", MAX_EXAMPLES), (FAULTS, MAX_EXAMPLES_UNDER_FAULTS)],
    ids=["plain", "faults"],
)
def test_schemathesis_finds_nothing(tmp_path: Path, faults: str, max_examples: int) -> None:
    # Given a local stack of its own (with AWS's failures injected, or not), an enterprise tenant
    # and the admin key
    stack: LocalStack = start_test_stack(
        tmp_path / "home", extra_args=["--faults", faults] if faults else None
    )
    try:
        tenant_key = _onboard(stack)
        config = _config(tmp_path, max_examples, bool(faults))
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
                str(max_examples),
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
    summary = re.search(r"Test cases:\s*\n\s*(.*)", result.stdout)
    print(f"schemathesis{' under ' + faults if faults else ''}: {summary.group(1) if summary else '?'}")
    # Then it reports no failure and no error
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    # And it tested every operation of the document, in every phase
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected is not None and tested is not None, result.stdout[-3000:]
    assert selected.group(1) == selected.group(2) == tested.group(1)
    # And both keys worked: no operation answered only 401/403 (a wrong key would hide everything)
    assert "Authentication failed" not in result.stdout, result.stdout[-3000:]
    for phase in PHASES_UNDER_FAULTS if faults else PHASES:
        assert f"✅ {phase}" in result.stdout, result.stdout[-3000:]
