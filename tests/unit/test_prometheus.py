"""GET /stats with Accept: text/plain and GET /stats/prometheus: the Prometheus text exposition,
read back with prometheus_client's own parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tenantry import exposition, metering, tenancy
from tenantry.models.tenants import CreateTenantRequest, UpdateTenantRequest
from tenantry.stores import usage as usage_store
from tenantry.stores.tenants import TenantRecord
from tests.conftest import (
    MONTH_END,
    MONTH_END_MS,
    HandlerClient,
    add_tokens,
    admin_context,
    api_event,
    load_function,
    tenant_context,
)

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.fixture
def api(aws: dict[str, str], lambda_context: Any, fixed_clock: datetime) -> Iterator[HandlerClient]:
    """The tenants function, its clock stopped at MONTH_END, where meter() stamps its requests."""
    for tenant_id, tier in (("acme", "basic"), ("globex", "pro"), ("initech", "pro")):
        tenancy.create_tenant(CreateTenantRequest(name=tenant_id.title(), tier=tier, tenant_id=tenant_id))
    yield HandlerClient(load_function("tenants").lambda_handler, lambda_context)


def meter(tenant: str, statuses_and_latencies: list[tuple[int, int]]) -> None:
    metering.ingest_lines(
        json.dumps(
            {
                "requestId": f"{tenant}-{number}",
                "tenantId": tenant,
                "httpMethod": "GET",
                "resourcePath": "/me",
                "status": str(status),
                "responseLatency": str(latency),
                "integrationLatency": str(latency),
                "requestTimeEpoch": str(MONTH_END_MS),
            }
        )
        for number, (status, latency) in enumerate(statuses_and_latencies)
    )


def get(
    api: HandlerClient, path: str, accept: str | None, authorizer: dict[str, str] | None = None, **query: str
) -> tuple[int, str, dict[str, str]]:
    """(status, raw body, headers): the body may be text, so it is not decoded."""
    headers = {"Accept": accept} if accept is not None else {}
    event = api_event(
        "GET", path, headers=headers, query=query or None, authorizer=authorizer or admin_context()
    )
    response = api.handler(event, api.context)
    headers = dict(response.get("headers") or {})
    headers.update({name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()})
    return response["statusCode"], response["body"], headers


def samples(text: str) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        found.setdefault(family.name, []).extend(family.samples)
    return found


def value(rows: list[Sample], name: str, **labels: str) -> float:
    matches = [
        s.value for s in rows if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def test_scrape_parses_and_carries_every_tenants_counters(api: HandlerClient) -> None:
    # Given acme with 3 allowed (10, 20, 300 ms), 2 throttled and 1 failed request, and chat tokens
    meter("acme", [(200, 10), (200, 20), (200, 300), (429, 1), (429, 1), (502, 40)])
    add_tokens("acme", usage_store.month_period(MONTH_END), 1200, 340, "claude-haiku-4-5")
    tenancy.update_tenant("initech", UpdateTenantRequest(status="suspended"), None)
    # When Prometheus scrapes /stats with its usual Accept header
    status, body, headers = get(api, "/stats", PROMETHEUS_ACCEPT)
    # Then the answer is the text format, which prometheus_client's parser reads back exactly
    assert status == 200
    assert headers["Content-Type"] == exposition.CONTENT_TYPE
    parsed = samples(body)
    requests = parsed["tenantry_requests"]
    assert value(requests, "tenantry_requests_total", tenant_id="acme", tier="basic", outcome="allowed") == 3
    assert value(requests, "tenantry_requests_total", tenant_id="acme", outcome="denied") == 2
    assert value(requests, "tenantry_requests_total", tenant_id="acme", outcome="errors") == 1
    assert value(requests, "tenantry_requests_total", tenant_id="globex", tier="pro", outcome="allowed") == 0
    tokens = parsed["tenantry_llm_tokens"]
    assert value(tokens, "tenantry_llm_tokens_total", tenant_id="acme", direction="input") == 1200
    assert value(tokens, "tenantry_llm_tokens_total", tenant_id="acme", direction="output") == 340
    # And the latency histogram is cumulative over the metering buckets, in seconds
    latency = parsed["tenantry_request_latency_seconds"]
    assert value(latency, "tenantry_request_latency_seconds_bucket", tenant_id="acme", le="0.01") == 3
    assert value(latency, "tenantry_request_latency_seconds_bucket", tenant_id="acme", le="0.025") == 4
    assert value(latency, "tenantry_request_latency_seconds_bucket", tenant_id="acme", le="+Inf") == 6
    assert value(latency, "tenantry_request_latency_seconds_count", tenant_id="acme") == 6
    assert value(latency, "tenantry_request_latency_seconds_sum", tenant_id="acme") == pytest.approx(0.372)
    buckets = [s for s in latency if s.name.endswith("_bucket") and s.labels["tenant_id"] == "acme"]
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)
    assert len(buckets) == len(metering.LATENCY_BUCKETS_MS) + 1
    # And tenants are counted by tier and status, zeros included
    tenants = parsed["tenantry_tenants"]
    assert value(tenants, "tenantry_tenants", tier="pro", status="active") == 1
    assert value(tenants, "tenantry_tenants", tier="pro", status="suspended") == 1
    assert value(tenants, "tenantry_tenants", tier="basic", status="active") == 1
    assert value(tenants, "tenantry_tenants", tier="enterprise", status="active") == 0
    assert value(parsed["tenantry_estimated_cost_usd"], "tenantry_estimated_cost_usd", tenant_id="acme") > 0


def test_prometheus_route_equals_negotiated_stats_and_json_stays_the_default(api: HandlerClient) -> None:
    meter("globex", [(200, 7)])
    _, negotiated, _ = get(api, "/stats", "text/plain")
    status, dedicated, headers = get(api, "/stats/prometheus", None)
    assert status == 200 and headers["Content-Type"] == exposition.CONTENT_TYPE
    assert samples(negotiated) == samples(dedicated)
    # A client that asks for JSON, anything, or nothing gets the JSON page as before
    for accept in (None, "*/*", "application/json", "application/json, text/plain"):
        status, body, headers = get(api, "/stats", accept)
        assert status == 200 and headers["Content-Type"].startswith("application/json"), accept
        assert {row["tenant_id"] for row in json.loads(body)["tenants"]} == {"acme", "globex", "initech"}


def test_scrape_by_tier_holds_only_that_tiers_tenants(api: HandlerClient) -> None:
    _, body, _ = get(api, "/stats/prometheus", None, tier="pro")
    requests = samples(body)["tenantry_requests"]
    assert {s.labels["tenant_id"] for s in requests} == {"globex", "initech"}


def test_tenant_key_cannot_scrape(api: HandlerClient) -> None:
    # Given acme's tenant key, when it asks for the exposition either way, then 403, and no figures
    for path, accept in (("/stats/prometheus", None), ("/stats", "text/plain")):
        status, body, _ = get(api, path, accept, authorizer=tenant_context("acme"))
        assert status == 403
        assert json.loads(body)["error"] == "admin_only"
        assert "tenantry_requests_total" not in body


def test_bad_tier_is_422_naming_the_field(api: HandlerClient) -> None:
    status, body, _ = get(api, "/stats/prometheus", None, tier="NOT A TIER")
    assert status == 422
    assert "tier" in json.loads(body)["message"]


def test_an_exposition_too_large_for_lambda_is_a_clear_422(
    api: HandlerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a response limit smaller than three tenants' series
    monkeypatch.setattr(exposition, "MAX_BODY_BYTES", 2000)
    status, body, _ = get(api, "/stats/prometheus", None)
    # Then the scrape is refused with the way out (shard by tier), never a 502 from Lambda
    assert status == 422
    answer = json.loads(body)
    assert answer["error"] == "exposition_too_large" and answer["field"] == "tier"


def test_label_values_are_escaped() -> None:
    tenant = TenantRecord(
        'we"ird\\id', "Weird", "basic", "active", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"
    )
    text = exposition.render([(tenant, {})])
    parsed = samples(text)["tenantry_requests"]
    assert {s.labels["tenant_id"] for s in parsed} == {'we"ird\\id'}


@pytest.mark.parametrize(
    ("accept", "text"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("text/plain", True),
        ("text/plain;version=0.0.4", True),
        ("application/json;q=0.9, text/plain", True),
        ("text/plain;q=0.5, application/json", False),
        ("text/plain;q=0", False),
        ("text/plain;q=bad", False),
        (PROMETHEUS_ACCEPT, True),
    ],
)
def test_accept_negotiation(accept: str | None, text: bool) -> None:
    assert exposition.wants_text(accept) is text
