"""What a newcomer meets first: a taken port, the install, and the sample events."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from local.samples import SAMPLE_KEY, SAMPLE_TENANT_ID
from local.stack_process import LocalStack
from local.template import REPO_ROOT


def _tenantry(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "tenantry_cli", *args, "--home", str(home)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_taken_port_exits_2_with_one_line_naming_a_free_port(tmp_path: Path) -> None:
    # Given something already listening on a port
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        # When the stack is started on it
        result = _tenantry("dev", "--host", "127.0.0.1", "--port", str(port), home=tmp_path / "home")
    # Then it exits 2 with one line that says how to pick another port, and no traceback
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "PORT=" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_make_installs_with_pips_own_progress() -> None:
    # Given the Makefile's install recipe
    recipe = [
        line.strip() for line in (REPO_ROOT / "Makefile").read_text().splitlines() if "pip install" in line
    ]
    # Then every pip install shows pip's progress bar and none is silenced
    assert recipe
    for line in recipe:
        assert "--progress-bar on" in line, line
        assert " -q" not in line and "--quiet" not in line, line


def _invoke(function: str, sample: str, home: Path) -> dict[str, object]:
    result = _tenantry("invoke", function, "-e", str(REPO_ROOT / "events" / f"{sample}.json"), home=home)
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_samples_act_on_their_own_tenant_and_the_authorizer_sample_key_works(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given a running stack where the developer onboarded tenant acme
    stack = stack_factory(tmp_path / "home")
    stack.create_tenant("basic", tenant_id="acme")
    acme_keys_before = stack.request("GET", "/tenants/acme/keys", key=stack.admin_key).json

    # When the authorizer, publish and key-rotation samples are invoked, and the authorizer again
    first = _invoke("AuthorizerFunction", "authorizer-request", stack.home)
    published = _invoke("EventsFunction", "event-publish", stack.home)
    rotated = _invoke("TenantsFunction", "key-rotate", stack.home)
    again = _invoke("AuthorizerFunction", "authorizer-request", stack.home)

    # Then the samples ran as tenant sample, whose key works against the local stack, even after
    # the rotation sample expired it
    assert first["principalId"] == again["principalId"] == SAMPLE_TENANT_ID
    assert published["statusCode"] == 201 and rotated["statusCode"] == 201
    me = stack.request("GET", "/me", key=SAMPLE_KEY)
    assert me.status == 200 and me.json["tenant_id"] == SAMPLE_TENANT_ID
    # And acme's keys are exactly as they were
    assert stack.request("GET", "/tenants/acme/keys", key=stack.admin_key).json == acme_keys_before
