"""The second wall: tenant requests use TenantDataRole sessions that reach only their own partition.

Moto checks no IAM, so these tests run with local/access.py's LeadingKeys enforcement (installed by
the ``aws`` fixture on every client): a store handed another tenant's id must get DynamoDB's
AccessDeniedException, whatever operation it uses.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenantry import aws as clients
from tenantry import caches, credentials, settings
from tenantry.models.tenants import CreateTenantRequest
from tenantry.stores import conversations as conversation_store
from tenantry.stores import events as event_store
from tenantry.stores import tenants as tenant_store
from tests.conftest import TEST_TENANT_DATA_ROLE_ARN, add_tokens, load_function, tenant_context
from tests.unit.test_no_secrets_in_logs import captured_logs  # noqa: F401 - a shared fixture

LAYER = Path(__file__).resolve().parents[2] / "layers" / "core" / "tenantry"


@pytest.fixture
def two_tenants(aws: dict[str, str]) -> Iterator[None]:
    from tenantry import tenancy

    for tenant_id in ("acme", "globex"):
        tenancy.create_tenant(CreateTenantRequest(name=tenant_id, tier="pro", tenant_id=tenant_id))
        event_store.DYNAMODB.open_stream(tenant_id, "", "x")
        event_store.DYNAMODB.append(
            tenant_id,
            0,
            [event_store.StoredEvent("t", "{}", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")],
            "x",
        )
    yield


def as_tenant(tenant_id: str) -> Any:
    """A block in which the data accessors use ``tenant_id``'s scoped credentials, as a request does."""
    vendor = credentials.vendor()
    assert vendor is not None
    return clients.tenant_scope(vendor.access_for(tenant_id))


def assert_denied(call: Any) -> None:
    with pytest.raises(ClientError) as raised:
        call()
    assert clients.error_code(raised.value) == "AccessDeniedException"
    assert "assumed-role/test-tenant-data/acme" in str(raised.value)


# ---------------------------------------------------------------------------------- the negative test


@pytest.mark.parametrize(
    "operation",
    [
        "GetItem",
        "Query",
        "PutItem",
        "UpdateItem",
        "TransactWriteItems",
        "BatchGetItem",
        "BatchWriteItem",
        "ChatTurn",
        "ConditionCheck",
        "OpenStream",
        "Scan",
    ],
)
def test_tenant_a_credentials_with_tenant_b_id_are_denied(two_tenants: None, operation: str) -> None:
    # Given acme's scoped credentials (the ones acme's requests run with)
    with as_tenant("acme"):
        # When a store is called with globex's id (the bug this wall is for)
        calls = {
            "GetItem": lambda: event_store.DYNAMODB.get_event("globex", 1),
            "Query": lambda: event_store.DYNAMODB.read_events("globex", 1, 10, None),
            "PutItem": lambda: event_store.DYNAMODB.save_checkpoint(
                "globex", event_store.StoredCheckpoint("reader", 1, "now")
            ),
            "UpdateItem": lambda: add_tokens("globex", "month#2026-01", 1, 1),
            "TransactWriteItems": lambda: event_store.DYNAMODB.append("globex", 1, [], "now"),
            "BatchGetItem": lambda: conversation_store.DYNAMODB.read_turn_state(
                "globex", "u1", None, "month#2026-01"
            ),
            "BatchWriteItem": lambda: conversation_store.DYNAMODB.delete_session("globex", "u1", "s1"),
            # a chat turn's transaction (through the scoped resource's own client) for globex
            "ChatTurn": lambda: conversation_store.DYNAMODB.write_turn(
                conversation_store.ChatSession("globex", "u1", "s1", "now", "now", "t", 1, "m"),
                conversation_store.ChatTurn(1, "hi", "hello", "m", 1, 1, "now"),
                month="month#2026-01",
                day="day#2026-01-01",
            ),
            # a stream opened for globex: the ConditionCheck on its tenant item is refused
            "OpenStream": lambda: event_store.DYNAMODB.open_stream("globex", "", "now"),
            "ConditionCheck": lambda: clients.data_client().transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": settings.table_name(settings.EVENTS_TABLE),
                            "Key": {"tenant_id": {"S": "globex"}, "position": {"N": "0"}},
                            "ConditionExpression": "attribute_exists(tenant_id)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": settings.table_name(settings.CONSUMERS_TABLE),
                            "Item": {"tenant_id": {"S": "acme"}, "name": {"S": "x"}},
                        }
                    },
                ]
            ),
            # Scan names no partition key: never allowed, even over the tenant's own items.
            "Scan": lambda: tenant_store.DYNAMODB.list_page(
                tier=None, status=None, limit=10, next_token=None
            ),
        }
        # Then DynamoDB answers AccessDenied
        assert_denied(calls[operation])
    # And nothing of globex changed
    assert event_store.DYNAMODB.read_head("globex") == 1
    assert event_store.DYNAMODB.get_checkpoint("globex", "reader") is None


def test_tenant_a_credentials_reach_tenant_a_data(two_tenants: None) -> None:
    # Given acme's scoped credentials, the same stores with acme's own id work
    with as_tenant("acme"):
        assert event_store.DYNAMODB.get_event("acme", 1) is not None
        assert len(event_store.DYNAMODB.read_events("acme", 1, 10, None).events) == 1
        event_store.DYNAMODB.save_checkpoint("acme", event_store.StoredCheckpoint("reader", 1, "now"))
        add_tokens("acme", "month#2026-01", 1, 2)
        state = conversation_store.DYNAMODB.read_turn_state("acme", "u1", "s1", "month#2026-01")
        assert state.config is not None
        assert state.usage_month.get("tokens_out") == 2
        assert conversation_store.DYNAMODB.delete_session("acme", "u1", "s1") == 1
        # A query on the conversations' local index is under the tenant's partition too
        assert conversation_store.DYNAMODB.list_sessions("acme", "u1", 10, None) == ([], None)
    assert event_store.DYNAMODB.get_checkpoint("acme", "reader") is not None


def test_a_batch_with_one_foreign_key_is_denied_whole(two_tenants: None) -> None:
    tenants_table = settings.table_name(settings.TENANTS_TABLE)
    with as_tenant("acme"):
        assert_denied(
            lambda: clients.data_resource().batch_get_item(
                RequestItems={tenants_table: {"Keys": [{"tenant_id": "acme"}, {"tenant_id": "globex"}]}}
            )
        )


def test_function_role_credentials_are_not_limited(two_tenants: None) -> None:
    # Outside a tenant's request (admin routes, metering, offboarding) the function role serves
    assert event_store.DYNAMODB.get_event("globex", 1) is not None
    assert len(tenant_store.DYNAMODB.list_page(tier=None, status=None, limit=10, next_token=None)[0]) == 2


# ---------------------------------------------------------------------------------- through the handlers


def test_handler_requests_run_with_the_callers_scoped_session(
    two_tenants: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the events function, and a store bug that always reads globex's stream
    from tests.conftest import api_event

    handler = load_function("events").lambda_handler
    real_read = event_store.DYNAMODB.read_events
    monkeypatch.setattr(
        event_store.DYNAMODB, "read_events", lambda _tenant, *rest: real_read("globex", *rest)
    )
    # When acme reads its events
    # Then AWS refuses: the invocation fails (API Gateway answers 502) and no globex event leaks
    with pytest.raises(ClientError) as raised:
        handler(api_event("GET", "/events", authorizer=tenant_context("acme")), lambda_context)
    assert clients.error_code(raised.value) == "AccessDeniedException"
    assert "dynamodb:Query" in str(raised.value)


def test_scoped_credentials_are_cached_per_tenant(two_tenants: None, lambda_context: Any) -> None:
    from tests.conftest import api_event

    handler = load_function("tenants").lambda_handler
    caches.clear_all()
    # When three tenants' requests arrive, several each
    for _ in range(5):
        for tenant_id in ("acme", "globex", "acme"):
            response = handler(api_event("GET", "/me", authorizer=tenant_context(tenant_id)), lambda_context)
            assert response["statusCode"] == 200
    # Then STS was asked once per tenant, not once per request
    vendor = credentials.vendor()
    assert vendor is not None
    assert vendor.assume_calls == 2
    assert vendor.cached_tenants() == 2


def test_admin_requests_do_not_assume_the_tenant_role(two_tenants: None, lambda_context: Any) -> None:
    from tests.conftest import admin_context, api_event

    handler = load_function("tenants").lambda_handler
    caches.clear_all()
    response = handler(api_event("GET", "/tenants", authorizer=admin_context()), lambda_context)
    assert response["statusCode"] == 200
    vendor = credentials.vendor()
    assert vendor is not None and vendor.assume_calls == 0


# ---------------------------------------------------------------------------------- the credential cache


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def test_credentials_are_renewed_a_margin_before_expiry(aws: dict[str, str]) -> None:
    # Given a cache of 900 s sessions (moto's STS honours DurationSeconds)
    clock = Clock()
    cache = credentials.TenantCredentials(TEST_TENANT_DATA_ROLE_ARN, 900, clock=clock)
    first = cache.access_for("acme")
    # When time passes, but not past expiry minus the margin, the same session serves
    clock.now += 900 - cache.margin - 5
    assert cache.access_for("acme") is first
    assert cache.assume_calls == 1
    # Then past that point a new session is assumed, before the old one dies
    clock.now += 10
    assert cache.access_for("acme") is not first
    assert cache.assume_calls == 2


def test_the_cache_keeps_the_most_recent_tenants(aws: dict[str, str]) -> None:
    cache = credentials.TenantCredentials(TEST_TENANT_DATA_ROLE_ARN, 900, max_tenants=2, max_clients=2)
    for tenant_id in ("t-a1", "t-b2", "t-a1", "t-c3"):
        cache.access_for(tenant_id)
    assert cache.cached_tenants() == 2
    cache.access_for("t-a1")  # still cached: used more recently than t-b2
    assert cache.assume_calls == 3
    cache.access_for("t-b2")  # dropped: assumed again
    assert cache.assume_calls == 4


def test_sessions_outlive_the_few_clients_kept(aws: dict[str, str]) -> None:
    # Given room for one tenant's clients (about 0.5 MB each) but many tenants' sessions
    cache = credentials.TenantCredentials(TEST_TENANT_DATA_ROLE_ARN, 900, max_clients=1)
    first = cache.access_for("t-a1")
    cache.access_for("t-b2")
    # When t-a1 comes back, its clients are rebuilt from its cached session: no STS call
    again = cache.access_for("t-a1")
    assert again is not first
    assert cache.assume_calls == 2
    assert cache.client_builds == 3
    assert cache.cached_clients() == 1
    # And the rebuilt clients still carry t-a1's session, which reaches t-a1's partition only
    with clients.tenant_scope(again), pytest.raises(ClientError) as raised:
        event_store.DYNAMODB.get_event("globex", 1)
    assert "assumed-role/test-tenant-data/t-a1" in str(raised.value)


def test_sts_failure_is_a_503_never_the_function_role(
    two_tenants: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import api_event

    handler = load_function("events").lambda_handler
    caches.clear_all()

    def refuse(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")

    monkeypatch.setattr(clients.sts(), "assume_role", refuse)
    response = handler(api_event("GET", "/events", authorizer=tenant_context("acme")), lambda_context)
    assert response["statusCode"] == 503
    assert '"credentials_unavailable"' in response["body"]
    assert response["headers"]["Retry-After"] == "1"


def test_session_lifetime_comes_from_the_env(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(credentials.SESSION_SECONDS_ENV, "1200")
    caches.clear_all()
    vendor = credentials.vendor()
    assert vendor is not None and vendor.session_seconds == 1200
    assert vendor.margin == credentials.REFRESH_MARGIN_SECONDS


# ---------------------------------------------------------------------------------- no store bypasses it


def test_only_the_key_store_and_health_use_the_function_roles_dynamodb() -> None:
    # Tenant data must go through aws.data_*(), the one place a request's credentials are chosen.
    # (The key table is keyed by key hash, so it stays with the function roles; health describes
    # tables; the authorizer keeps its own minimal client for the key table.)
    allowed = {"aws.py", "keys.py", "health.py", "authorizer.py"}
    direct = re.compile(
        r"\baws\.(dynamodb_client|dynamodb|table)\(|\bboto3\.(client|resource)\(\s*\"dynamodb\""
    )
    offenders = [
        f"{path.relative_to(LAYER)}:{number}"
        for path in sorted(LAYER.rglob("*.py"))
        if path.name not in allowed
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if direct.search(line) and path.name != "credentials.py"
    ]
    assert offenders == []


# ---------------------------------------------------------------------------------- Lambda tenant isolation


def test_the_tenant_lambda_reports_is_logged_and_must_be_the_callers(
    two_tenants: None,
    lambda_context: Any,
    captured_logs: io.StringIO,  # noqa: F811 - the shared fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tenantry import http
    from tests.conftest import api_event

    monkeypatch.setattr(http, "_environment_tenant", {})
    handler = load_function("tenants").lambda_handler
    # Given an execution environment Lambda dedicated to acme (tenant isolation mode)
    lambda_context.tenant_id = "acme"
    # When acme calls, the request is served and the logs carry the tenant Lambda reports
    response = handler(api_event("GET", "/me", authorizer=tenant_context("acme")), lambda_context)
    assert response["statusCode"] == 200
    # When another tenant's request reaches it (a misrouted invoke), it is refused, not served
    response = handler(api_event("GET", "/me", authorizer=tenant_context("globex")), lambda_context)
    assert response["statusCode"] == 500
    assert '"tenant_mismatch"' in response["body"]
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines() if line.startswith("{")]
    dedicated = [line for line in lines if "dedicated to one tenant" in line.get("message", "")]
    assert [line["lambda_tenant_id"] for line in dedicated] == ["acme"]
    refused = [line for line in lines if line.get("level") == "ERROR"]
    assert refused and refused[0]["lambda_tenant_id"] == "acme" and refused[0]["tenant_id"] == "globex"
