"""``tenantry logs`` over the local stack's files: every function's log and the access log."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from local.stack_process import LocalStack
from tenantry_cli import logs as cli_logs
from tenantry_cli.main import main


def _wait_for(predicate: Callable[[], bool]) -> None:
    event = threading.Event()
    while not predicate():
        event.wait(0.05)


def test_logs_are_files_under_home_and_one_tenants_lines_are_its_own(
    stack_factory: Callable[..., LocalStack], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack where two tenants made requests
    home = tmp_path / "home"
    stack = stack_factory(home)
    _, acme = stack.create_tenant("pro", tenant_id="acme")
    _, globex = stack.create_tenant("pro", tenant_id="globex")
    for key in (acme, globex):
        assert stack.request("POST", "/events", key=key, body={"type": "t", "data": {}}).status == 201
    _wait_for(lambda: (home / "access.log").read_text().count('"tenantId":"globex"') == 1)
    # Then each function's output is in its own file under the home
    assert (home / "logs" / "AuthorizerFunction.log").exists()
    assert (home / "logs" / "EventsFunction.log").exists()

    # When one tenant's logs are asked for
    assert main(["logs", "--home", str(home), "--tenant", "acme"]) == 0
    out = capsys.readouterr().out.splitlines()

    # Then they hold its access-log line and its authorizer lines, and nothing of the other tenant
    sources = {line.split()[0] for line in out}
    assert {"access", "AuthorizerFunction"} <= sources
    assert all(cli_logs.tenant_of(line.split(None, 1)[1]) == "acme" for line in out)
    assert any('"resourcePath":"/events"' in line for line in out)


def test_follow_prints_new_lines_of_the_tenant_as_they_come(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given a stack, and a follower of tenant acme started before acme's request
    home = tmp_path / "home"
    stack = stack_factory(home)
    _, acme = stack.create_tenant("pro", tenant_id="acme")
    _, globex = stack.create_tenant("pro", tenant_id="globex")
    lines, offsets = cli_logs.read_local(home, "acme")
    out = io.StringIO()
    stop = threading.Event()
    follower = threading.Thread(target=cli_logs.follow_local, args=(home, "acme", out, stop, offsets))
    follower.start()
    try:
        # When both tenants make requests
        stack.request("GET", "/me", key=globex)
        stack.request("GET", "/me", key=acme)
        # Then acme's new access-log line is printed, and globex's never is
        _wait_for(lambda: '"resourcePath":"/me"' in out.getvalue())
    finally:
        stop.set()
        follower.join()
    assert "globex" not in out.getvalue()
    assert not any('"resourcePath":"/me"' in line.text for line in lines)


def test_no_local_state_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "--home", str(tmp_path / "nothing")]) == 2
    assert "no local state" in capsys.readouterr().err
