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


# ------------------------------------------------------------------ a large tenant: purged off the request
def test_a_large_tenants_offboarding_answers_202_at_once_and_the_final_purge_finishes_it(
    handler: Any, scheduler: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tenant whose data takes longer to purge than a request may wait (here: more than a
    # page per table, and no time past the first)
    from tenantry.stores import purge

    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "60")
    monkeypatch.setattr(tenancy, "REQUEST_PURGE_SECONDS", 0.0)
    monkeypatch.setattr(purge, "PAGE_SIZE", 1)
    Tenant("acme")
    seed_partition_items("acme")
    Tenant("globex")
    seed_partition_items("globex")
    # When the admin offboards it
    response = handler(api_event("DELETE", "/tenants/acme", authorizer=admin_context()))
    # Then it answers 202 "purging" at once: keys revoked, the purge not done, the final purge scheduled
    answer = response_json(response)
    assert response["statusCode"] == 202, answer
    assert answer["status"] == "purging" and answer["keys_revoked"] == 1
    assert items_of("acme")["ApiKeys"] == 0
    assert 0 < items_of("acme")["ConsumersTable"] < 3
    scheduled = scheduler.list_schedules(GroupName=GROUP)["Schedules"]
    assert [found["Name"] for found in scheduled] == [tasks.schedule_name(tasks.FINISH_OFFBOARDING, "acme")]
    # And the tenant is gone for the admin API, its id refused until the final purge
    with pytest.raises(NotFound):
        tenancy.get_tenant("acme")
    # And sending DELETE again is safe and says where it stands: it purges a little more each time,
    # 202 while anything is left, 200 once nothing is
    statuses: list[int] = []
    while not statuses or statuses[-1] == 202:
        statuses.append(
            handler(api_event("DELETE", "/tenants/acme", authorizer=admin_context()))["statusCode"]
        )
    assert statuses[0] == 202 and statuses[-1] == 200, statuses
    assert {name: count for name, count in items_of("acme").items() if count} == {"TenantsTable": 1}

    # When the final purge runs once due, as Scheduler invokes the tenants function
    clients.table(settings.table_name(settings.CONSUMERS_TABLE)).put_item(
        Item={"tenant_id": "acme", "name": "late", "position": 1}
    )
    monkeypatch.setattr(tenancy, "_now", lambda: time.time() + 61)
    tenants = load_function("tenants")
    done = tenants.lambda_handler(
        {"tenantry_task": "finish_offboarding", "tenant_id": "acme"}, lambda_context
    )
    # Then everything is gone and the id is free; the other tenant is untouched
    assert done["done"] is True and done["items_deleted"]["ConsumersTable"] == 1
    assert set(items_of("acme").values()) == {0}
    assert items_of("globex")["ConsumersTable"] == 3


def test_a_final_purge_that_runs_out_of_time_schedules_its_next_round(
    aws: dict[str, str], scheduler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an offboarded tenant whose first purge was cut short, and its final purge due
    from tenantry.stores import purge

    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "0")
    monkeypatch.setattr(tenancy, "REQUEST_PURGE_SECONDS", 0.0)
    monkeypatch.setattr(purge, "PAGE_SIZE", 1)
    Tenant("acme")
    seed_partition_items("acme")
    consumers = clients.table(settings.table_name(settings.CONSUMERS_TABLE))
    for index in range(10):
        consumers.put_item(Item={"tenant_id": "acme", "name": f"many#{index}", "position": index})
    tenancy.offboard_tenant("acme", None, task_target=TARGET)
    task = {"tenantry_task": "finish_offboarding", "tenant_id": "acme"}
    # When a run of the final purge has no time left for it
    monkeypatch.setattr(tenancy, "TASK_RESERVE_SECONDS", 10_000.0)
    answer = tenancy.run_task(task, task_target=TARGET)
    # Then it stops, keeps the id refused, and schedules a next round of its own
    assert answer["done"] is False and answer["continues_at"]
    assert items_of("acme")["TenantsTable"] == 1
    follow_up = tasks.schedule_name(tasks.FINISH_OFFBOARDING, "acme", round_number=1)
    schedule = scheduler.get_schedule(Name=follow_up, GroupName=GROUP)
    assert json.loads(schedule["Target"]["Input"]) == {**task, "round": 1}
    assert len(follow_up) <= 64
    # And onboarding the id meanwhile is refused with when to come back
    with pytest.raises(Exception, match="being offboarded") as refused:
        tenancy.create_tenant(CreateTenantRequest(name="acme", tier="pro", tenant_id="acme"))
    assert getattr(refused.value, "code", None) == "tenant_offboarding"
    # When the next round has time, it finishes: no item left, the id free
    monkeypatch.setattr(tenancy, "TASK_RESERVE_SECONDS", 4.0)
    assert tenancy.run_task({**task, "round": 1}, task_target=TARGET)["done"] is True
    assert set(items_of("acme").values()) == {0}


def test_a_purge_cut_short_goes_on_where_it_stopped(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tenant with more items than one page, and a clock that passes a second per page read
    from tenantry.stores import purge

    Tenant("acme")
    table = clients.table(settings.table_name(settings.CONSUMERS_TABLE))
    for index in range(7):
        table.put_item(Item={"tenant_id": "acme", "name": f"c{index}", "position": index})
    monkeypatch.setattr(purge, "PAGE_SIZE", 2)
    ticks = iter(range(1000))
    monkeypatch.setattr(purge, "_clock", lambda: float(next(ticks)))
    # When a purge may run until the clock reads 2 (three pages of two)
    first = purge.purge_tenant("acme", stop_at=2.0)
    # Then it deleted those pages, not the rest, and says so
    assert not first.complete and first.deleted["ConsumersTable"] == 6
    # And a purge without a limit deletes exactly the rest
    monkeypatch.setattr(purge, "_clock", time.monotonic)
    rest = purge.purge_tenant("acme")
    assert rest.complete and first.deleted["ConsumersTable"] + rest.deleted["ConsumersTable"] == 7
    assert items_of("acme")["ConsumersTable"] == 0


def test_onboarding_the_id_as_the_final_purge_finishes_takes_the_freed_id(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an offboarded tenant whose final purge is due
    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "0")
    Tenant("acme")
    tenancy.offboard_tenant("acme", None)
    # And the scheduled final purge finishes just after an onboarding found the id taken
    real_get = tenant_store.DYNAMODB.get
    purges = iter([True])

    def purged_meanwhile(tenant_id: str) -> tenant_store.TenantRecord | None:
        if next(purges, False):
            monkeypatch.setattr(tenant_store.DYNAMODB, "get", real_get)
            assert tenancy.finish_offboarding(tenant_id) is not None
        return real_get(tenant_id)

    monkeypatch.setattr(tenant_store.DYNAMODB, "get", purged_meanwhile)
    # When the id is onboarded, it gets the freed id (not 409 tenant_exists)
    created = tenancy.create_tenant(CreateTenantRequest(name="Acme again", tier="pro", tenant_id="acme"))
    assert created.tenant.tenant_id == "acme" and created.tenant.name == "Acme again"
