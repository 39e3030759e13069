"""Offboarding: every key revoked and deleted at both places, every tenant item purged; repeatable."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.gateway import schedules
from tenantry import aws as clients
from tenantry import caches, edge, keys, registry, settings, tasks, tenancy
from tenantry import events as event_logic
from tenantry.errors import NotFound
from tenantry.models.tenants import CreateTenantRequest, IssueKeyRequest
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store
from tests.conftest import (
    FakeLambdaContext,
    HandlerClient,
    admin_context,
    api_event,
    load_function,
    response_json,
    tenant_context,
)


def items_of(tenant_id: str) -> dict[str, int]:
    """Items under the tenant's partition in every registered table, plus its key records."""
    counts: dict[str, int] = {}
    for entry in registry.registered_tables():
        table = clients.table(settings.table_name(entry.env_var))
        response = table.query(
            KeyConditionExpression="tenant_id = :t", ExpressionAttributeValues={":t": tenant_id}
        )
        counts[entry.logical_id] = len(response["Items"])
    counts["ApiKeys"] = len(key_store.DYNAMODB.list_for_tenant(tenant_id))
    return counts


def seed_partition_items(tenant_id: str) -> None:
    """Extra items in every partition-keyed table, as later features would write them."""
    for entry in registry.registered_tables():
        if entry.sort_key is None:
            continue
        table = clients.table(settings.table_name(entry.env_var))
        for index in range(3):
            sort_value: Any = index + 1 if entry.logical_id == "EventsTable" else f"seed#{index}"
            table.put_item(Item={"tenant_id": tenant_id, entry.sort_key: sort_value, "seeded": True})


@pytest.fixture
def handler(aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    # The final purge is due at once (the tests that wait for it say so themselves).
    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "0")
    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: True)
    tenants = load_function("tenants")
    return lambda event: tenants.lambda_handler(event, lambda_context)


def test_offboarding_removes_every_item_and_key_and_keeps_other_tenants(handler: Any) -> None:
    # Given two tenants with rotated keys and data in every tenant table
    for tenant_id in ("leaving", "staying"):
        tenancy.create_tenant(CreateTenantRequest(name=tenant_id, tier="pro", tenant_id=tenant_id))
        tenancy.issue_key(tenant_id, IssueKeyRequest(grace_seconds=60), None)
        seed_partition_items(tenant_id)
    leaving_keys = [key.key_hash for key in key_store.DYNAMODB.list_for_tenant("leaving")]
    assert all(
        count > 0 for name, count in items_of("leaving").items() if name in ("TenantsTable", "ApiKeys")
    )

    # When the admin offboards one of them
    response = handler(api_event("DELETE", "/tenants/leaving", authorizer=admin_context()))

    # Then the answer counts what went
    assert response["statusCode"] == 200
    result = response_json(response)
    assert result["tenant_id"] == "leaving"
    # (two keys, one API Gateway key: the tenant's usage identity)
    assert result["keys_revoked"] == 2 and result["edge_keys_deleted"] == 1
    # And nothing of that tenant is left but its offboarding marker, until the final purge
    assert {name: count for name, count in items_of("leaving").items() if count} == {"TenantsTable": 1}
    assert tenancy.finish_offboarding("leaving") == {name: 0 for name in result["items_deleted"]}
    assert set(items_of("leaving").values()) == {0}
    assert all(key_store.DYNAMODB.get(key_hash) is None for key_hash in leaving_keys)
    remaining_edge = clients.apigateway().get_api_keys(includeValues=True)["items"]
    assert {item["tags"]["tenant_id"] for item in remaining_edge} == {"staying"}
    # And the other tenant is untouched
    assert items_of("staying")["TenantsTable"] == 1 and items_of("staying")["ApiKeys"] == 2


def test_offboarding_twice_is_harmless_and_reports_zeros(handler: Any) -> None:
    tenancy.create_tenant(CreateTenantRequest(name="Gone", tier="basic", tenant_id="gone"))
    first = handler(api_event("DELETE", "/tenants/gone", authorizer=admin_context()))
    second = handler(api_event("DELETE", "/tenants/gone", authorizer=admin_context()))
    assert first["statusCode"] == second["statusCode"] == 200
    again = response_json(second)
    assert again["keys_revoked"] == 0 and again["edge_keys_deleted"] == 0
    assert set(again["items_deleted"].values()) == {0}
    assert handler(api_event("GET", "/tenants/gone", authorizer=admin_context()))["statusCode"] == 404


def test_an_offboarded_tenant_id_can_be_onboarded_again_with_a_fresh_key(handler: Any) -> None:
    old = tenancy.create_tenant(CreateTenantRequest(name="Phoenix", tier="basic", tenant_id="phoenix"))
    handler(api_event("DELETE", "/tenants/phoenix", authorizer=admin_context()))
    new = tenancy.create_tenant(CreateTenantRequest(name="Phoenix", tier="pro", tenant_id="phoenix"))
    assert key_store.DYNAMODB.get(keys.hash_key(old.api_key)) is None
    assert key_store.DYNAMODB.get(keys.hash_key(new.api_key)) is not None
    assert new.tenant.tier == "pro"


def test_a_failed_edge_key_leaves_no_half_onboarded_tenant(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given API Gateway refuses the new key

    def refuse(**_: Any) -> str:
        raise edge.EdgeError("API Gateway said no")

    monkeypatch.setattr(edge, "create_key", refuse)
    # When onboarding runs, it fails
    with pytest.raises(edge.EdgeError):
        tenancy.create_tenant(CreateTenantRequest(name="Half", tier="basic", tenant_id="half"))
    # Then no tenant record is left behind
    assert items_of("half")["TenantsTable"] == 0


# ------------------------------------------------------------------ the race with in-flight writes
class Tenant:
    """A tenant onboarded through the library, and the authorizer context its key resolves to."""

    def __init__(self, tenant_id: str) -> None:
        created = tenancy.create_tenant(CreateTenantRequest(name=tenant_id, tier="pro", tenant_id=tenant_id))
        item = key_store.DYNAMODB.get(keys.hash_key(created.api_key))
        assert item is not None
        self.tenant_id = tenant_id
        # What the authorizer puts in the context: the key item's incarnation (the tenant's).
        self.context = {**tenant_context(tenant_id, "pro"), "incarnation": item.incarnation}


@pytest.fixture
def events(
    aws: dict[str, str], lambda_context: Any
) -> Iterator[Callable[[Tenant, dict[str, Any]], tuple[int, Any]]]:
    function = load_function("events")

    def publish(tenant: Tenant, body: dict[str, Any]) -> tuple[int, Any]:
        client = HandlerClient(function.lambda_handler, lambda_context)
        status, answer, _ = client.invoke("POST", "/events", authorizer=tenant.context, body=body)
        return status, answer

    yield publish


def stream_of(tenant_id: str) -> list[int]:
    table = clients.table(settings.table_name(settings.EVENTS_TABLE))
    found = table.query(
        KeyConditionExpression="tenant_id = :t",
        ExpressionAttributeValues={":t": tenant_id},
        ConsistentRead=True,
    )["Items"]
    return sorted(int(str(item["position"])) for item in found)


def test_a_publish_authorized_before_the_offboarding_writes_nothing_after_it(
    handler: Any, events: Any
) -> None:
    # Given a tenant with events, whose events function remembers its HEAD (a warm sandbox)
    acme = Tenant("acme")
    assert events(acme, {"type": "t", "data": {}}) == (201, {"position": 1})
    # When it is offboarded, and a request its key was authorized for before then publishes
    handler(api_event("DELETE", "/tenants/acme", authorizer=admin_context()))
    status, answer = events(acme, {"type": "late", "data": {}})
    # Then the publish is refused and nothing is written, warm HEAD or cold
    assert status == 403 and answer["error"] == "tenant_offboarded"
    caches.clear_all("tenantry.events.")  # a cold sandbox
    assert events(acme, {"type": "late", "data": {}})[0] == 403
    assert stream_of("acme") == []


def test_a_late_publish_of_the_old_tenant_never_lands_in_the_new_one(handler: Any, events: Any) -> None:
    # Given a tenant offboarded and re-created with the same id, whose new stream has as many
    # events as the old one had, and an old request still holding the old HEAD (a warm sandbox)
    old = Tenant("phoenix")
    assert events(old, {"type": "old", "data": {}}) == (201, {"position": 1})
    handler(api_event("DELETE", "/tenants/phoenix", authorizer=admin_context()))
    new = Tenant("phoenix")  # the final purge is due at once here: onboarding runs it
    assert events(new, {"type": "new", "data": {}}) == (201, {"position": 1})
    event_logic._known_heads["phoenix"] = 1  # the old sandbox's view matches the new stream's HEAD
    # When the old request publishes
    status, answer = events(old, {"type": "old", "data": {}})
    # Then it is refused, and the new stream holds only its own event
    assert status == 403 and answer["error"] == "tenant_offboarded"
    assert stream_of("phoenix") == [0, 1]
    assert events(new, {"type": "new", "data": {}}) == (201, {"position": 2})


def test_the_id_is_refused_until_the_final_purge_then_free(
    handler: Any, events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tenant offboarded with the final purge a minute away
    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "60")
    acme = Tenant("acme")
    events(acme, {"type": "t", "data": {}})
    answer = response_json(handler(api_event("DELETE", "/tenants/acme", authorizer=admin_context())))
    assert answer["id_free_after"]
    # When the id is onboarded again before then
    again = {"name": "Acme", "tier": "pro", "tenant_id": "acme"}
    response = handler(api_event("POST", "/tenants", authorizer=admin_context(), body=again))
    # Then it is refused with a clear code and when to retry; the offboarding tenant is gone for the API
    assert response["statusCode"] == 409
    assert response_json(response)["error"] == "tenant_offboarding"
    headers = response.get("headers") or {
        name: values[-1] for name, values in response["multiValueHeaders"].items()
    }
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert handler(api_event("GET", "/tenants/acme", authorizer=admin_context()))["statusCode"] == 404
    listed = response_json(handler(api_event("GET", "/tenants", authorizer=admin_context())))
    assert all(tenant["tenant_id"] != "acme" for tenant in listed["tenants"])
    # And once the final purge is due, onboarding runs it and succeeds, with an empty stream
    monkeypatch.setattr(tenancy, "_now", lambda: time.time() + 61)
    response = handler(api_event("POST", "/tenants", authorizer=admin_context(), body=again))
    assert response["statusCode"] == 201
    assert stream_of("acme") == []


def test_another_tenants_key_cannot_offboard(handler: Any) -> None:
    Tenant("acme")
    response = handler(api_event("DELETE", "/tenants/acme", authorizer=tenant_context("globex")))
    assert response["statusCode"] == 403
    assert items_of("acme")["TenantsTable"] == 1 and items_of("acme")["ApiKeys"] == 1


def test_offboarding_reads_partitions_and_never_scans(handler: Any, dynamodb_calls: list[str]) -> None:
    Tenant("acme")
    dynamodb_calls.clear()
    handler(api_event("DELETE", "/tenants/acme", authorizer=admin_context()))
    tenancy.finish_offboarding("acme")
    assert "Scan" not in dynamodb_calls and "Query" in dynamodb_calls


# ------------------------------------------------------------------ the scheduled final purge
GROUP = "test-TaskScheduleGroup"  # the template's group, as the IAM tier names it


@pytest.fixture
def scheduler(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(settings.SCHEDULE_GROUP, GROUP)
    monkeypatch.setenv(settings.SCHEDULER_ROLE_ARN, "arn:aws:iam::123456789012:role/test-scheduler")
    client = clients.scheduler()
    client.create_schedule_group(Name=GROUP)
    return client


# The function the schedules invoke: the tenants function itself (its context's ARN).
TARGET = FakeLambdaContext.invoked_function_arn


def test_offboarding_schedules_its_final_purge_and_the_task_purges_what_came_late(
    handler: Any, scheduler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tenant offboarded with the final purge 60 s away
    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "60")
    Tenant("acme")
    started = time.time()
    assert handler(api_event("DELETE", "/tenants/acme", authorizer=admin_context()))["statusCode"] == 200
    # Then a one-time schedule invokes the tenants function with the task, at that time, once
    name = tasks.schedule_name(tasks.FINISH_OFFBOARDING, "acme")
    schedule = scheduler.get_schedule(Name=name, GroupName=GROUP)
    at = schedules.due_at(schedule["ScheduleExpression"])
    assert at is not None and int(started) + 60 <= at <= time.time() + 61
    assert schedule["Target"]["Arn"] == TARGET
    assert json.loads(schedule["Target"]["Input"]) == {
        "tenantry_task": "finish_offboarding",
        "tenant_id": "acme",
    }
    assert schedule["ActionAfterCompletion"] == "DELETE"
    # And a retried offboarding moves the same schedule instead of adding one
    assert handler(api_event("DELETE", "/tenants/acme", authorizer=admin_context()))["statusCode"] == 200
    listed = scheduler.list_schedules(GroupName=GROUP)["Schedules"]
    assert [found["Name"] for found in listed] == [name]

    # When a request in flight at the offboarding writes after the first purge
    clients.table(settings.table_name(settings.CONSUMERS_TABLE)).put_item(
        Item={"tenant_id": "acme", "name": "late", "position": 1}
    )
    # Then the task, if Scheduler runs it early, fails so Lambda retries it later
    task = {"tenantry_task": "finish_offboarding", "tenant_id": "acme"}
    with pytest.raises(tasks.TaskNotDueError):
        tenancy.run_task(task)
    # And once due, it purges the late write and frees the id; running it again does nothing
    monkeypatch.setattr(tenancy, "_now", lambda: time.time() + 61)
    done = tenancy.run_task(task)
    assert done["done"] is True and done["items_deleted"]["ConsumersTable"] == 1
    assert set(items_of("acme").values()) == {0}
    assert tenancy.run_task(task)["items_deleted"] == {}


def test_the_tenants_function_runs_a_scheduled_task(
    aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "0")
    Tenant("acme")
    tenancy.offboard_tenant("acme", None)
    tenants = load_function("tenants")
    answer = tenants.lambda_handler(
        {"tenantry_task": "finish_offboarding", "tenant_id": "acme"}, lambda_context
    )
    assert answer["done"] is True
    assert set(items_of("acme").values()) == {0}


# ------------------------------------------------------------------ retry-safe at every step
STEPS = [
    ("dynamodb", "UpdateItem"),  # the offboarding mark (and the key's revocation after it)
    ("dynamodb", "Query"),  # the keys' index, then the purges
    ("dynamodb", "GetItem"),  # a key's record
    ("apigateway", "DeleteApiKey"),
    ("dynamodb", "DeleteItem"),  # a key's record, then the stream's HEAD
    ("dynamodb", "BatchWriteItem"),  # a purge
    ("scheduler", "CreateSchedule"),
]


@pytest.mark.parametrize(("service", "operation"), STEPS)
def test_offboarding_retried_after_a_failure_at_any_step_ends_the_same(  # noqa: PLR0917 - fixtures
    aws: dict[str, str],
    scheduler: Any,
    faults: Any,
    events: Any,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    operation: str,
) -> None:
    # Given a tenant with two keys, events and data in every table
    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "60")
    acme = Tenant("acme")
    tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=60), None)
    events(acme, {"type": "t", "data": {}})
    seed_partition_items("acme")
    Tenant("globex")
    # When the offboarding fails at this step (AWS answers an error botocore does not retry)
    injector = faults("seed=1")
    injector.fail_once(
        service, operation, "ValidationException" if service != "apigateway" else "BadRequestException"
    )
    with pytest.raises(ClientError):
        tenancy.offboard_tenant("acme", None, task_target=TARGET)
    # And is retried
    tenancy.offboard_tenant("acme", None, task_target=TARGET)
    # Then the end state is the one a single run reaches: no key anywhere, no data, the id
    # refused, the final purge scheduled; the other tenant untouched
    assert {name: count for name, count in items_of("acme").items() if count} == {"TenantsTable": 1}
    edge_keys = clients.apigateway().get_api_keys(includeValues=True)["items"]
    assert {item["tags"]["tenant_id"] for item in edge_keys} == {"globex"}
    assert tenancy.get_tenant("globex").status == "active"
    assert events(acme, {"type": "late", "data": {}})[0] == 403
    assert len(scheduler.list_schedules(GroupName=GROUP)["Schedules"]) == 1
    with pytest.raises(NotFound):
        tenancy.get_tenant("acme")
    # And the final purge, once due, frees the id
    monkeypatch.setattr(tenancy, "_now", lambda: time.time() + 61)
    assert tenancy.finish_offboarding("acme") is not None
    assert set(items_of("acme").values()) == {0}


def test_a_rotation_racing_the_offboarding_issues_no_key(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a rotation that read the tenant just before the offboarding marked it
    Tenant("acme")
    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "60")
    real_require = tenant_store.require

    def offboarded_meanwhile(store: tenant_store.TenantStore, tenant_id: str) -> tenant_store.TenantRecord:
        tenant = real_require(store, tenant_id)
        tenancy.offboard_tenant(tenant_id, None)
        return tenant

    monkeypatch.setattr(tenant_store, "require", offboarded_meanwhile)
    # When the rotation goes on, it is refused as for a tenant that does not exist
    with pytest.raises(NotFound):
        tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=60), None)
    # And no key of that tenant exists anywhere
    assert items_of("acme")["ApiKeys"] == 0
    assert clients.apigateway().get_api_keys()["items"] == []
