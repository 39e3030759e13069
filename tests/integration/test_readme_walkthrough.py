"""The README's curl walk-through works exactly as written, against a fresh local stack."""

from __future__ import annotations

import json
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
    script = walkthrough_script().replace("http://127.0.0.1:${PORT:-3000}", stack.url)
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
    me = json.loads(lines[0])
    assert (me["tenant_id"], me["tier"]) == ("acme", "pro")
    assert me["scopes"] is None and set(me["limit_sources"].values()) == {"tier"}
    assert json.loads(lines[1]) == {"position": 1}
    assert json.loads(lines[2]) == {"positions": [2, 3]}
    page = json.loads(lines[3])
    assert [event["position"] for event in page["events"]] == [1, 2, 3] and page["next_from"] is None
    # the subscription: the three stored events, the one published while it was open, then its end
    sse = [line for line in lines if line.startswith(("event: ", "id: "))]
    assert sse[:10] == [
        *("event: event", "id: 1", "event: event", "id: 2", "event: event", "id: 3"),
        *("event: event", "id: 4", "event: end", "id: 4"),
    ]
    assert 'data: {"next_from":5}' in lines
    chat = json.loads(next(line for line in lines if line.startswith('{"response"')))
    assert chat["response"] == "echo: Hello" and chat["model"] == "echo-1"
    # the streamed turn: start, deltas, done
    assert sse[10] == "event: start" and sse[-1] == "event: done"
    assert set(sse[11:-1]) == {"event: delta"}
    usage = json.loads(next(line for line in lines if line.startswith('{"tenant_id":"acme","tier"')))
    assert {"today", "month", "limits", "estimated_cost"} <= usage.keys()
    # the dashboard's scoped key: its read answers 200, its publish API Gateway's 403 (no function ran)
    scoped = next(line for line in lines if line.startswith("200 {"))
    refused = json.loads(scoped.removeprefix("200 "))
    assert refused["error"] == "access_denied" and refused["request_id"]
    statuses = lines[-2].split()
    assert len(statuses) == 12 and statuses[0] == "200" and statuses[-1] == "429"
    throttled = json.loads(lines[-1])
    assert throttled["message"] == "Too Many Requests" and throttled["error"] == "throttled"
    assert throttled["request_id"]
