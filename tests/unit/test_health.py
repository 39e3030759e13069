"""GET /health and GET /ready report whether DynamoDB answers."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, api_event, load_function, response_json


def test_health_reports_dynamodb_reachable_with_its_latency(
    aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenantry import health

    # Given the sample health event, and DynamoDB's checks taking 12.5 ms by the check's own clock
    event = json.loads((REPO_ROOT / "events" / "health.json").read_text())
    ticks = iter([100.0, 100.0125])
    monkeypatch.setattr(health, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    # When the health function handles it
    response = load_function("health").lambda_handler(event, lambda_context)
    # Then it is healthy and says how long DynamoDB took to answer
    assert response["statusCode"] == 200
    body = response_json(response)
    assert body["status"] == "healthy"
    assert body["components"]["dynamodb"] == {"status": "healthy", "latency_ms": 12.5}


def test_ready_is_200_when_the_tables_answer(aws: dict[str, str], lambda_context: Any) -> None:
    response = load_function("health").lambda_handler(api_event("GET", "/ready"), lambda_context)
    assert response["statusCode"] == 200 and response_json(response) == {"ready": True}


def test_both_are_503_when_a_table_is_missing(
    aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function points at a table that does not exist
    monkeypatch.setenv("TENANTS_TABLE", "no-such-table")
    handler = load_function("health").lambda_handler
    # Then neither answer claims health
    health = handler(api_event("GET", "/health"), lambda_context)
    assert health["statusCode"] == 503
    assert response_json(health)["components"]["dynamodb"]["status"] == "unhealthy"
    ready = handler(api_event("GET", "/ready"), lambda_context)
    assert ready["statusCode"] == 503 and response_json(ready) == {"ready": False}


def test_a_check_is_reused_for_one_second_per_sandbox(aws: dict[str, str]) -> None:
    from tenantry import aws as aws_clients
    from tenantry import health

    # Given a healthy check at t=100 s
    now = [100.0]
    assert health.check_dynamodb(clock=lambda: now[0])["status"] == "healthy"
    # When the key table disappears half a second later
    aws_clients.dynamodb_client().delete_table(TableName=aws["ApiKeysTable"])
    now[0] = 100.5
    # Then the sandbox still answers the check it made (no DescribeTable within the second)
    assert health.check_dynamodb(clock=lambda: now[0])["status"] == "healthy"
    # And once the second is over, a new check finds the table gone
    now[0] = 101.01
    gone = health.check_dynamodb(clock=lambda: now[0])
    assert gone["status"] == "unhealthy" and gone["error"] == "ResourceNotFoundException"
