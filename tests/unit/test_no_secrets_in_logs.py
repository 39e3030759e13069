"""No API key and no key hash ever appears in a log line, whatever the request does."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tenantry import edge, keys
from tenantry.observability import logger as powertools_logger
from tests.conftest import (
    admin_context,
    api_event,
    load_function,
    response_json,
    tenant_context,
    with_last_character_changed,
)


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Everything logged: Powertools JSON lines, the authorizer's lines, and any library's records."""
    sink = io.StringIO()
    powertools_handler = logging.StreamHandler(sink)
    powertools_handler.setFormatter(powertools_logger.registered_formatter)
    internal: logging.Logger = powertools_logger._logger
    internal.addHandler(powertools_handler)
    plain_handler = logging.StreamHandler(sink)
    authorizer_logger = logging.getLogger("tenantry.authorizer")
    authorizer_logger.addHandler(plain_handler)
    caplog.set_level(logging.DEBUG, logger="tenantry")
    yield sink
    internal.removeHandler(powertools_handler)
    authorizer_logger.removeHandler(plain_handler)
    sink.write("\n".join(record.getMessage() for record in caplog.records))


def test_a_full_key_lifecycle_logs_no_key_and_no_hash(
    aws: dict[str, str], lambda_context: Any, captured_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: True)
    tenants = load_function("tenants").lambda_handler
    authorize = load_function("authorizer").lambda_handler
    method_arn = "arn:aws:execute-api:us-east-1:123456789012:api/v1/GET/me"

    # Given a tenant onboarded, its key used, rotated, revoked and the tenant offboarded
    created = response_json(
        tenants(
            api_event("POST", "/tenants", body={"name": "Acme", "tier": "pro"}, authorizer=admin_context()),
            lambda_context,
        )
    )
    tenant_id, first_key = created["tenant"]["tenant_id"], created["api_key"]
    authorize({"methodArn": method_arn, "headers": {"X-API-Key": first_key}}, lambda_context)
    tenants(api_event("GET", "/me", authorizer=tenant_context(tenant_id)), lambda_context)
    rotated = response_json(
        tenants(
            api_event("POST", f"/tenants/{tenant_id}/keys", body={}, authorizer=admin_context()),
            lambda_context,
        )
    )
    second_key = rotated["api_key"]
    tenants(
        api_event(
            "DELETE", f"/tenants/{tenant_id}/keys/{rotated['key']['key_id']}", authorizer=admin_context()
        ),
        lambda_context,
    )
    for bad in (second_key, with_last_character_changed(first_key)):
        with pytest.raises(Exception, match="Unauthorized"):
            authorize({"methodArn": method_arn, "headers": {"X-API-Key": bad}}, lambda_context)
    tenants(api_event("DELETE", f"/tenants/{tenant_id}", authorizer=admin_context()), lambda_context)

    # Then the logs tell the story by tenant and key id
    text = captured_logs.getvalue()
    assert "tenant onboarded" in text and "key revoked" in text and "tenant offboarded" in text
    assert "authorizer decision" in text and "unknown_key" not in text and "revoked_key" in text
    assert rotated["key"]["key_id"] in text
    # And never show a key, a key's secret part, or a key hash
    for key in (first_key, second_key):
        assert key not in text
        assert key[len(keys.TENANT_PREFIX) : -6] not in text
        assert keys.hash_key(key) not in text
