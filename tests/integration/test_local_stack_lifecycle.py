"""make dev's lifecycle: first start, onboarding from a file, restart with the data kept, hot reload."""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from tenantry import keys
from tests.integration.conftest import OVERLAY, LocalStack, gateway_error


def test_restart_keeps_tenants_keys_and_the_admin_key(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given a stack with a tenant onboarded from a file
    home = tmp_path / "home"
    tenants_file = tmp_path / "tenants.yaml"
    tenants_file.write_text("- {name: Acme, tier: pro, tenant_id: acme}\n- {name: Beta, tier: basic}\n")
    first = stack_factory(home, extra_args=["--tenants", str(tenants_file)])
    printed = Path(first.stdout).read_text()
    assert "tenant acme (pro): tnt_live_" in printed
    acme_key = printed.split("tenant acme (pro): ")[1].split()[0]
    assert first.request("GET", "/me", key=acme_key).json["tenant_id"] == "acme"
    admin_key = first.admin_key
    # When it is stopped with SIGTERM and started again on the same home
    assert first.stop() == 0
    second = stack_factory(home, extra_args=["--tenants", str(tenants_file)])
    # Then the data, the API Gateway key and the admin key survived, and onboarding is not repeated
    assert second.admin_key == admin_key
    me = second.request("GET", "/me", key=acme_key)
    assert me.status == 200
    assert me.json["tier"] == "pro"
    assert len(second.request("GET", "/tenants", key=admin_key).json["tenants"]) == 2
    assert "tenant acme: exists already" in Path(second.stdout).read_text()


def test_hot_reload_picks_up_a_code_change(stack_factory: Callable[..., LocalStack], tmp_path: Path) -> None:
    # Given a stack serving a copy of the overlay's functions, with reload on
    overlay_dir = tmp_path / "overlay"
    shutil.copytree(OVERLAY.parent / "functions", overlay_dir / "functions")
    shutil.copy(OVERLAY, overlay_dir / "overlay.yaml")
    stack = stack_factory(tmp_path / "home", overlay=overlay_dir / "overlay.yaml", reload=True)
    assert stack.request("GET", "/_test/public/x").json["greeting"] == "hello"
    # When the handler's code changes
    handler = overlay_dir / "functions" / "echo" / "app.py"
    handler.write_text(handler.read_text().replace('GREETING = "hello"', 'GREETING = "reloaded"'))
    # Then a later request runs the new code (the watcher polls once a second)
    greeting = "hello"
    for _ in range(50):
        greeting = stack.request("GET", "/_test/public/x").json["greeting"]
        if greeting == "reloaded":
            break
        time.sleep(0.2)
    assert greeting == "reloaded"


def test_authorizer_failure_is_500(stack_factory: Callable[..., LocalStack], tmp_path: Path) -> None:
    # Given a private stack whose ApiKeys table has gone away, so the authorizer's lookup raises
    stack = stack_factory(tmp_path / "home")
    stack.aws_client("dynamodb").delete_table(TableName="tenantry-local-ApiKeysTable")
    # When a well-formed key (valid checksum) is presented
    answer = stack.request("GET", "/me", key=keys.generate("tenant"))
    # Then API Gateway's authorizer-failure answer, with nothing of the exception
    assert answer.status == 500
    assert answer.json == gateway_error(answer, None, "server_error")
    # And a route without the authorizer still answers
    assert stack.request("GET", "/ready").status == 503


def test_the_state_folder_and_every_file_in_it_are_private(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given a state folder that already exists with loose permissions, and a file left in it
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    (home / "leftover.json").write_text("{}", encoding="utf-8")
    (home / "leftover.json").chmod(0o644)
    # When the stack runs, onboards a tenant (a key value in API Gateway's store) and stops
    stack = stack_factory(home)
    stack.create_tenant("basic")
    assert stack.stop() == 0
    # Then the folder is 0700 and no file or folder in it is readable by anyone else
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "aws-state.json").exists()
    loose = {
        str(path.relative_to(home)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in home.rglob("*")
        if stat.S_IMODE(path.stat().st_mode) & 0o077
    }
    assert loose == {}
