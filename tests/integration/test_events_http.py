"""The event store through the local gateway, over real HTTP, with real keys."""

from __future__ import annotations

from tests.integration.conftest import LocalStack


def test_publish_read_and_isolation_over_http(gateway: LocalStack) -> None:
    # Given two tenants
    _, acme = gateway.create_tenant("enterprise")
    _, globex = gateway.create_tenant("enterprise")
    # When acme publishes, once with an Idempotency-Key sent twice
    body = {"type": "order.placed", "data": {"order_id": "o-1"}}
    first = gateway.request("POST", "/events", key=acme, body=body, headers={"Idempotency-Key": "o-1"})
    replay = gateway.request("POST", "/events", key=acme, body=body, headers={"Idempotency-Key": "o-1"})
    batch = gateway.request("POST", "/events", key=acme, body={"events": [body, body]})
    # Then positions are gapless and the replay stored nothing
    assert (first.status, first.json) == (201, {"position": 1})
    assert (replay.status, replay.json) == (201, {"position": 1})
    assert (batch.status, batch.json) == (201, {"positions": [2, 3]})
    assert gateway.request("GET", "/metrics", key=acme).json["total_events"] == 3
    # And globex sees none of it, and starts its own stream at 1
    assert gateway.request("GET", "/events/1", key=globex).status == 404
    assert gateway.request("GET", "/events", key=globex).json == {"events": [], "next_from": None}
    assert gateway.request("POST", "/events", key=globex, body=body).json == {"position": 1}
    # And acme reads its events back in order
    page = gateway.request("GET", "/events?from=1&limit=2", key=acme).json
    assert [event["position"] for event in page["events"]] == [1, 2]
    assert page["next_from"] == 3


def test_admin_key_cannot_publish(gateway: LocalStack) -> None:
    answer = gateway.request("POST", "/events", key=gateway.admin_key, body={"type": "t", "data": {}})
    assert answer.status == 403
