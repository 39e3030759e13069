"""Hostile requests over real HTTP through the local gateway: a clear 4xx, never a 5xx."""

from __future__ import annotations

import http.client
import json
from typing import Any

from tests.integration.conftest import LocalStack, gateway_error


def _send(
    stack: LocalStack, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, dict[str, Any]]:
    """One request with headers in order, repeats allowed (http.client keeps every putheader)."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        raw = response.read()
        answer = json.loads(raw) if raw else {}
        answer["_request_id"] = response.getheader("x-amzn-RequestId")
        return response.status, answer
    finally:
        connection.close()


def test_two_different_api_keys_are_401_even_when_one_is_cached(gateway: LocalStack) -> None:
    # Given two tenants, and the first one's key already in the authorizer cache
    _, first = gateway.create_tenant("pro")
    _, second = gateway.create_tenant("pro")
    assert gateway.request("GET", "/me", key=first).status == 200
    for pair in ((first, second), (second, first)):
        # When a request carries both keys
        status, answer = _send(gateway, "GET", "/me", [("X-API-Key", pair[0]), ("X-API-Key", pair[1])])
        # Then 401 in the gateway's error shape: neither key wins
        assert status == 401, answer
        assert answer["error"] == "unauthorized" and answer["message"] == "Unauthorized"
    # And the same key twice is that key
    status, _ = _send(gateway, "GET", "/me", [("X-API-Key", first), ("x-api-key", first)])
    assert status == 200


def test_positions_not_in_canonical_form_never_read_event_one(gateway: LocalStack) -> None:
    _, key = gateway.create_tenant("pro")
    assert gateway.request("POST", "/events", key=key, body={"type": "x", "data": {}}).status == 201
    assert gateway.request("GET", "/events/1", key=key).status == 200
    for path in ("/events/%201", "/events/+1", "/events/01", "/events/1%2F2"):
        answer = gateway.request("GET", path, key=key)
        assert answer.status == 422, (path, answer.raw)
        assert answer.json["errors"][0]["field"] == "position"
    # An encoded slash never splits a segment: no route, API Gateway's own 403
    slash = gateway.request("GET", "/events%2F1", key=key)
    assert slash.status == 403
    assert slash.json == gateway_error(slash, "Missing Authentication Token", "missing_authentication_token")


def test_hostile_bodies_get_a_clear_4xx_and_nothing_is_stored(gateway: LocalStack) -> None:
    _, key = gateway.create_tenant("pro")
    cases = [
        (b'{"type":"x","data":{"s":"\xff"}}', "application/json", 400, "body"),
        (b'{"type":"x","data":{"n":NaN}}', "application/json", 400, "body"),
        (b'{"type":"x","data":{"s":"\\ud800"}}', "application/json", 422, "data.s"),
        (
            json.dumps({"type": "x", "data": json.loads("[" * 900 + "]" * 900)}).encode(),
            "application/json",
            422,
            "data.0",
        ),
        (b'{"type":"x","data":{}}', "application/jsonx", 415, "Content-Type"),
        (b'{"type":"x","data":{}}', "application/json; charset=latin-1", 415, "Content-Type"),
    ]
    for raw, media_type, status, field in cases:
        answer = gateway.request("POST", "/events", key=key, raw=raw, headers={"Content-Type": media_type})
        assert answer.status == status, (raw[:40], answer.raw)
        assert answer.json["field"].startswith(field)
        assert answer.json["request_id"] == answer.headers["x-amzn-requestid"]
    assert gateway.request("GET", "/metrics", key=key).json["total_events"] == 0
