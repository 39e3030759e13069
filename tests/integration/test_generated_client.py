"""A client generated from docs/openapi.json by openapi-python-client, as a user outside the repo
would make one: it builds with no warning, has every model, and every operation it has works
against the stack (onboarding, patching and offboarding a tenant included), its answers parsed
into the generated models."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.integration.conftest import REPO_ROOT, LocalStack

PACKAGE = "tenantry_client"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, str]]:
    """The generated package, imported, and what the generator printed."""
    root = tmp_path_factory.mktemp("generated")
    result = subprocess.run(  # noqa: S603 - our own pinned dev dependency's CLI
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(REPO_ROOT / "docs" / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
        ],
        cwd=root,
        # Its post-hooks run ruff on the code it wrote: the venv's.
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sys.path.insert(0, str(root))
    try:
        importlib.import_module(f"{PACKAGE}.models")  # the package's __init__ imports only the clients
        yield importlib.import_module(PACKAGE), output
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _operations(package: ModuleType) -> set[str]:
    api = Path(str(package.__file__)).parent / "api"
    return {
        f"{tag.name}.{module.stem}"
        for tag in api.iterdir()
        if tag.is_dir()
        for module in tag.glob("[!_]*.py")
    }


class Caller:
    """Calls generated operations by ``tag.module`` and remembers which it called."""

    def __init__(self, package: ModuleType) -> None:
        self.package = package
        self.called: set[str] = set()

    def __call__(self, operation: str, status: int, parsed: Any, **kwargs: Any) -> Any:
        module = importlib.import_module(f"{PACKAGE}.api.{operation}")
        answer = module.sync_detailed(**kwargs)
        self.called.add(operation)
        assert answer.status_code == status, (operation, answer.status_code, answer.content[:500])
        assert isinstance(answer.parsed, parsed), (operation, type(answer.parsed), answer.content[:500])
        return answer.parsed


def test_the_generated_client_builds_without_a_warning_and_has_every_model(
    generated: tuple[ModuleType, str],
) -> None:
    package, output = generated
    # Then the generator warned about nothing, and dropped no model
    assert "WARNING" not in output and "Unable to" not in output, output
    models = package.models
    for name in (
        "Tenant",
        "CreatedTenant",
        "TenantPage",
        "TenantConfig",
        "ErrorBody",
        "Published",
        "EventPage",
    ):
        assert hasattr(models, name), name


def test_every_operation_of_the_generated_client_works(
    generated: tuple[ModuleType, str], gateway: LocalStack
) -> None:
    package, _ = generated
    models = package.models
    call = Caller(package)
    anonymous = package.Client(base_url=gateway.url)

    def keyed(key: str) -> Any:
        return package.AuthenticatedClient(
            base_url=gateway.url, token=key, prefix="", auth_header_name="X-API-Key"
        )

    admin = keyed(gateway.admin_key)
    # Given the probes answer
    call("health.get_health_health_get", 200, models.Health, client=anonymous)
    call("health.get_ready_ready_get", 200, models.Ready, client=anonymous)
    # When an operator onboards, lists, reads and patches a tenant
    created = call(
        "tenants.create_tenant_tenants_post",
        201,
        models.CreatedTenant,
        client=admin,
        body=models.CreateTenantRequest(
            name="Generated Co",
            tier=models.CreateTenantRequestTier.ENTERPRISE,
            config=models.TenantConfig(max_messages=10),
        ),
    )
    tenant_id = created.tenant.tenant_id
    tenant = keyed(created.api_key)
    assert created.tenant.config.to_dict() == {"max_messages": 10}
    call("tenants.list_tenants_tenants_get", 200, models.TenantPage, client=admin)
    call("tenants.get_tenant_tenants_tenant_id_get", 200, models.Tenant, client=admin, tenant_id=tenant_id)
    patched = call(
        "tenants.update_tenant_tenants_tenant_id_patch",
        200,
        models.Tenant,
        client=admin,
        tenant_id=tenant_id,
        body=models.UpdateTenantRequest(name="Renamed Co"),
    )
    assert patched.name == "Renamed Co"
    # And issues and lists its keys
    issued = call(
        "keys.issue_key_tenants_tenant_id_keys_post",
        201,
        models.IssuedKey,
        client=admin,
        tenant_id=tenant_id,
        body=models.IssueKeyRequest(grace_seconds=3600),
    )
    call("keys.list_keys_tenants_tenant_id_keys_get", 200, models.KeyList, client=admin, tenant_id=tenant_id)
    # And the tenant describes itself, publishes (once per Idempotency-Key) and reads its stream
    call("tenant.me_me_get", 200, models.Me, client=tenant)
    # And mints a key of its own for its CI, lists its keys and revokes that one
    minted = call(
        "tenant.create_my_key_me_keys_post",
        201,
        models.IssuedKey,
        client=tenant,
        body=models.MyKeyRequest(name="ci", expires_in_seconds=3600),
    )
    mine = call("tenant.list_my_keys_me_keys_get", 200, models.KeyList, client=tenant)
    assert minted.key.key_id in {key.key_id for key in mine.keys}
    call(
        "tenant.revoke_my_key_me_keys_key_id_delete",
        200,
        models.KeyInfo,
        client=tenant,
        key_id=minted.key.key_id,
    )
    event = models.PublishEventsPostSingleEventIn(
        type_="order.placed", data=models.PublishEventsPostSingleEventInData.from_dict({"order_id": "o-1"})
    )
    first = call(
        "events.publish_events_post", 201, models.Published, client=tenant, body=event, idempotency_key="k-1"
    )
    again = call(
        "events.publish_events_post", 201, models.Published, client=tenant, body=event, idempotency_key="k-1"
    )
    assert first.position == again.position == 1
    batch = models.PublishEventsPostEventBatch(
        events=[models.EventIn(type_="order.paid", data=models.EventInData())], expected_position=1
    )
    assert call(
        "events.publish_events_post", 201, models.PublishedBatch, client=tenant, body=batch
    ).positions == [2]
    # (a stale expected position: 409 with the current one)
    stale = call("events.publish_events_post", 409, models.ErrorBody, client=tenant, body=batch)
    assert (stale.error, stale.current_position) == ("wrong_expected_position", 2)
    page = call(
        "events.read_events_events_get", 200, models.EventPage, client=tenant, from_=1, limit=10, to=2
    )
    assert [found.position for found in page.events] == [1, 2]
    # And it subscribes: the stream, read whole, up to `limit` events
    stream = call("events.subscribe_events_stream_get", 200, str, client=tenant, from_=2, limit=1)
    assert stream.startswith("event: event\nid: 2\n") and "event: end\nid: 2\n" in stream
    call("events.get_event_events_position_get", 200, models.Event, client=tenant, position="1")
    call("events.stream_metrics_metrics_get", 200, models.StreamMetrics, client=tenant)
    call(
        "events.save_checkpoint_consumers_name_put",
        200,
        models.Checkpoint,
        client=tenant,
        name="reader",
        body=models.CheckpointIn(position=2),
    )
    call("events.get_checkpoint_consumers_name_get", 200, models.Checkpoint, client=tenant, name="reader")
    # And one of its users chats, lists, reads and deletes the session
    answer = call(
        "chat.chat_turn_chat_post",
        200,
        models.ChatAnswer,
        client=tenant,
        body=models.ChatRequest(message="hello"),
        x_user_id="alice",
    )
    session = {"client": tenant, "session_id": answer.session_id, "x_user_id": "alice"}
    call("chat.list_sessions_sessions_get", 200, models.SessionPage, client=tenant, x_user_id="alice")
    call("chat.read_session_sessions_session_id_get", 200, models.SessionDetail, **session)
    call("chat.delete_session_sessions_session_id_delete", 200, models.SessionDeleted, **session)
    # And usage and statistics are read, by the tenant and by the operator
    call("usage.my_usage_usage_get", 200, models.UsageReport, client=tenant)
    call(
        "usage.tenant_usage_tenants_tenant_id_usage_get",
        200,
        models.UsageReport,
        client=admin,
        tenant_id=tenant_id,
    )
    call("usage.stats_stats_get", 200, models.StatsPage, client=admin)
    call("usage.stats_prometheus_stats_prometheus_get", 200, str, client=admin)
    # And the console's page and assets load
    call("console.page_console_get", 200, str, client=anonymous)
    call("console.asset_console_asset_get", 200, str, client=anonymous, asset="console.js")
    # And the operator revokes the issued key, then offboards the tenant
    call(
        "keys.revoke_key_tenants_tenant_id_keys_key_id_delete",
        200,
        models.KeyInfo,
        client=admin,
        tenant_id=tenant_id,
        key_id=issued.key.key_id,
    )
    offboarded = call(
        "tenants.offboard_tenant_tenants_tenant_id_delete",
        200,
        models.OffboardResult,
        client=admin,
        tenant_id=tenant_id,
    )
    assert offboarded.tenant_id == tenant_id
    # Then every operation the client has was called, each answered and parsed
    assert call.called == _operations(package)
