"""Hostile bodies, media types and path parameters: a clear 4xx naming the field, never a 5xx,
never stored when it could not be read back; and what is accepted always reads back."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tenantry import jsonguard, settings
from tests.conftest import admin_context, api_event, load_function, response_json, tenant_context


class Events:
    def __init__(self, lambda_context: Any) -> None:
        self.handler = load_function("events").lambda_handler
        self.context = lambda_context

    def send(self, event: dict[str, Any]) -> tuple[int, Any]:
        response = self.handler(event, self.context)
        return int(response["statusCode"]), response_json(response)

    def publish_raw(self, raw: str, **kwargs: Any) -> tuple[int, Any]:
        return self.send(
            api_event("POST", "/events", raw_body=raw, authorizer=tenant_context("acme"), **kwargs)
        )

    def get(self, position: str) -> tuple[int, Any]:
        return self.send(
            api_event(
                "GET",
                f"/events/{position}",
                authorizer=tenant_context("acme"),
                resource="/events/{position}",
                path_parameters={"position": position},
            )
        )

    def page(self) -> tuple[int, Any]:
        return self.send(
            api_event("GET", "/events", query={"limit": "1000"}, authorizer=tenant_context("acme"))
        )

    def total(self) -> int:
        return int(
            self.send(api_event("GET", "/metrics", authorizer=tenant_context("acme")))[1]["total_events"]
        )


@pytest.fixture
def events(aws: dict[str, str], lambda_context: Any) -> Iterator[Events]:
    yield Events(lambda_context)


def _nested(depth: int) -> Any:
    """A JSON object ``depth`` levels deep counting itself: {"a": {"a": ... {}}}."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_a_body_that_is_not_utf8_is_400_naming_body_and_nothing_is_stored(events: Events) -> None:
    # Given bytes that are not UTF-8, handed on base64-encoded as API Gateway does with binary bodies
    raw = b'{"type":"x","data":{"s":"\xff\xfe"}}'
    event = api_event("POST", "/events", authorizer=tenant_context("acme"))
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    # When it is published
    status, body = events.send(event)
    # Then 400 naming the body, and the stream is empty
    assert status == 400, body
    assert body["error"] == "invalid_encoding" and body["field"] == "body" and body["request_id"]
    assert events.total() == 0


@pytest.mark.parametrize("depth", [33, 200, 990, 5000])
def test_nesting_beyond_the_limit_is_422_naming_the_field_and_nothing_is_stored(
    events: Events, depth: int
) -> None:
    # Given an event whose data nests beyond the documented depth (the body's top level counts)
    raw = json.dumps({"type": "deep", "data": _nested(depth)})
    # When it is published
    status, body = events.publish_raw(raw)
    # Then 422 naming the path into data, and nothing is stored
    assert status == 422, body
    assert body["error"] == "too_deep"
    assert body["field"].startswith("data.a.a")
    assert body["errors"][0]["field"] == body["field"]
    assert events.total() == 0


def test_deep_nesting_in_a_batch_names_the_event(events: Events) -> None:
    raw = json.dumps({"events": [{"type": "ok", "data": {}}, {"type": "deep", "data": _nested(40)}]})
    status, body = events.publish_raw(raw)
    assert status == 422, body
    assert body["field"].startswith("events.1.data.a")


def test_deep_nesting_is_refused_on_every_route_with_a_body(aws: dict[str, str], lambda_context: Any) -> None:
    # Given a tenant-creation body nested 990 levels deep (RecursionError territory)
    raw = json.dumps({"name": "Acme", "tier": "basic", "config": _nested(990)})
    response = load_function("tenants").lambda_handler(
        api_event("POST", "/tenants", raw_body=raw, authorizer=admin_context()), lambda_context
    )
    # Then a 422 naming config, never a 5xx
    assert response["statusCode"] == 422
    assert response_json(response)["field"].startswith("config.a")


def test_the_deepest_accepted_event_round_trips(events: Events) -> None:
    # Given an event at exactly the documented depth (the body is the first of 32 levels)
    data = _nested(jsonguard.MAX_JSON_DEPTH - 1)
    # When it is published, read by position and read in a page
    status, body = events.publish_raw(json.dumps({"type": "deep", "data": data}))
    assert status == 201, body
    got_status, got = events.get(str(body["position"]))
    page_status, page = events.page()
    # Then it reads back unchanged both ways
    assert got_status == 200 and got["data"] == data
    assert page_status == 200 and page["events"][0]["data"] == data


def test_the_largest_accepted_event_round_trips(events: Events) -> None:
    # Given an event whose body is exactly the size limit
    envelope = json.dumps({"type": "big", "data": {"s": ""}})
    filler = "é" * ((settings.MAX_BODY_BYTES - len(envelope.encode())) // 2)
    raw = json.dumps({"type": "big", "data": {"s": filler}}, ensure_ascii=False)
    raw += " " * (settings.MAX_BODY_BYTES - len(raw.encode()))
    assert len(raw.encode()) == settings.MAX_BODY_BYTES
    # When it is published and read back
    status, body = events.publish_raw(raw)
    assert status == 201, body
    got_status, got = events.get(str(body["position"]))
    # Then every character comes back
    assert got_status == 200 and got["data"]["s"] == filler
    assert events.page()[1]["events"][0]["data"]["s"] == filler


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"type":"x","data":{"s":"\\ud800"}}', "data.s"),
        ('{"type":"x","data":{"\\udfff":1}}', "data.\udfff"),
        ('{"events":[{"type":"x","data":{"list":["ok","\\udc00"]}}]}', "events.0.data.list.1"),
    ],
)
def test_a_lone_surrogate_is_422_and_nothing_is_stored(events: Events, raw: str, field: str) -> None:
    status, body = events.publish_raw(raw)
    assert status == 422, body
    assert body["error"] == "invalid_string"
    assert body["field"].encode("utf-8", "surrogatepass") == field.encode("utf-8", "surrogatepass")
    assert events.total() == 0


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"x","data":{"n":NaN}}',
        '{"type":"x","data":{"n":Infinity}}',
        '{"type":"x","data":{"n":-Infinity}}',
        '{"type":"x","data":{"n":1e400}}',
    ],
)
def test_nan_and_infinity_are_400_and_nothing_is_stored(events: Events, raw: str) -> None:
    status, body = events.publish_raw(raw)
    assert status == 400, body
    assert body["error"] == "malformed_json" and body["field"] == "body"
    assert events.total() == 0


def _checkpoint(events: Events, raw_body: str) -> tuple[int, Any]:
    return events.send(
        api_event(
            "PUT",
            "/consumers/c1",
            raw_body=raw_body,
            authorizer=tenant_context("acme"),
            resource="/consumers/{name}",
            path_parameters={"name": "c1"},
        )
    )


@pytest.mark.parametrize("value", ["true", "1.5", "1e-1", '"1"', "null"])
def test_a_checkpoint_position_must_be_an_integer(events: Events, value: str) -> None:
    # Given one event, so position 1 would be valid
    assert events.publish_raw('{"type":"x","data":{}}')[0] == 201
    # When a checkpoint is saved with a boolean, a fraction, a string or null for the position
    status, body = _checkpoint(events, f'{{"position": {value}}}')
    # Then 422 naming position, in both places every error body names a field
    assert status == 422, body
    assert body["field"] == body["errors"][0]["field"] == "position"


@pytest.mark.parametrize("value", ["1.0", "1e0", "0.1e1", "1.000"])
def test_an_integral_number_is_the_integer_it_stands_for_in_a_body_as_in_a_query(
    events: Events, value: str
) -> None:
    # Given one event
    assert events.publish_raw('{"type":"x","data":{}}')[0] == 201
    # When a checkpoint's position, and a read's limit, are written as integral numbers
    saved = _checkpoint(events, f'{{"position": {value}}}')
    read = events.send(api_event("GET", "/events", query={"limit": value}, authorizer=tenant_context("acme")))
    # Then both are read as 1, as JSON Schema reads them
    assert saved[0] == 200 and saved[1]["position"] == 1, saved
    assert read[0] == 200 and len(read[1]["events"]) == 1, read


@pytest.mark.parametrize("value", ["1.5", "+1", "01", " 1", "1_0", "0x1", "1e400"])
def test_a_query_integer_is_a_json_integer_or_refused(events: Events, value: str) -> None:
    # When a read's limit is a fraction, or text that is not a JSON number
    status, body = events.send(
        api_event("GET", "/events", query={"limit": value}, authorizer=tenant_context("acme"))
    )
    # Then 422 naming limit
    assert status == 422, body
    assert body["field"] == body["errors"][0]["field"] == "limit"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"type":"x","type":"y","data":{}}', "type"),
        ('{"type":"x","data":{"a":1,"b":{"c":1,"c":1}}}', "data.b.c"),
        ('{"events":[{"type":"x","data":{}},{"type":"x","data":{},"data":{}}]}', "events.1.data"),
    ],
)
def test_a_duplicate_key_at_any_depth_is_400_naming_it_and_nothing_is_stored(
    events: Events, raw: str, field: str
) -> None:
    # When a body holds an object with a key twice
    status, body = events.publish_raw(raw)
    # Then 400 duplicate_key naming the key's path, and nothing is stored
    assert (status, body["error"], body["field"]) == (400, "duplicate_key", field), body
    assert body["errors"] == [{"field": field, "message": body["message"], "type": "duplicate_key"}]
    assert events.total() == 0


def test_a_duplicate_tier_never_onboards_a_tenant(aws: dict[str, str], lambda_context: Any) -> None:
    # When an onboarding names the tier twice (a proxy reading the first value sees basic)
    tenants = load_function("tenants").lambda_handler
    raw = '{"name":"dup","tier":"basic","tier":"enterprise"}'
    response = tenants(
        api_event("POST", "/tenants", raw_body=raw, authorizer=admin_context()), lambda_context
    )
    # Then it is 400 naming tier, and no tenant exists
    assert response["statusCode"] == 400
    assert response_json(response)["field"] == "tier"
    listed = tenants(api_event("GET", "/tenants", authorizer=admin_context()), lambda_context)
    assert response_json(listed)["tenants"] == []


def _issue_key_raw(lambda_context: Any, raw_body: str) -> dict[str, Any]:
    """Onboard a tenant, then POST ``raw_body`` to its key-issuing route (whose body is optional)."""
    tenants = load_function("tenants").lambda_handler
    created = tenants(
        api_event("POST", "/tenants", body={"name": "Acme", "tier": "basic"}, authorizer=admin_context()),
        lambda_context,
    )
    tenant_id = response_json(created)["tenant"]["tenant_id"]
    event = api_event(
        "POST",
        f"/tenants/{tenant_id}/keys",
        raw_body=raw_body,
        authorizer=admin_context(),
        resource="/tenants/{tenant_id}/keys",
        path_parameters={"tenant_id": tenant_id},
    )
    response: dict[str, Any] = tenants(event, lambda_context)
    return response


@pytest.mark.parametrize(("value", "status"), [("true", 422), ("60.5", 422), ("60.0", 201)])
def test_key_lifetimes_must_be_integers(
    aws: dict[str, str], lambda_context: Any, value: str, status: int
) -> None:
    response = _issue_key_raw(lambda_context, f'{{"grace_seconds": {value}}}')
    assert response["statusCode"] == status
    if status == 422:
        assert response_json(response)["errors"][0]["field"] == "grace_seconds"


@pytest.mark.parametrize(
    "media_type",
    ["application/jsonx", "application/json; charset=latin-1", "text/plain", "application/json;v=2"],
)
def test_only_json_in_utf8_is_parsed(events: Events, media_type: str) -> None:
    status, body = events.publish_raw('{"type":"x","data":{}}', headers={"Content-Type": media_type})
    assert status == 415, body
    assert body["field"] == "Content-Type"
    assert events.total() == 0


@pytest.mark.parametrize(
    "media_type", ["application/json", "Application/JSON; charset=UTF-8", 'application/json;charset="utf-8"']
)
def test_json_spellings_that_mean_utf8_json_are_accepted(events: Events, media_type: str) -> None:
    status, _ = events.publish_raw('{"type":"x","data":{}}', headers={"Content-Type": media_type})
    assert status == 201


@pytest.mark.parametrize("position", [" 1", "+1", "01", "1 ", "1.0", "0x1", "١"])
def test_a_position_not_in_canonical_form_is_422(events: Events, position: str) -> None:
    # Given event 1 exists
    assert events.publish_raw('{"type":"x","data":{}}')[0] == 201
    # When it is asked for with a position that only parses loosely
    status, body = events.get(position)
    # Then 422 naming position, not event 1
    assert status == 422, body
    assert body["errors"][0]["field"] == "position"


def test_a_position_beyond_int64_is_422_never_a_store_error(events: Events) -> None:
    status, body = events.send(
        api_event("GET", "/events", query={"from": str(10**40)}, authorizer=tenant_context("acme"))
    )
    assert status == 422, body
    assert body["errors"][0]["field"] == "from"


@pytest.mark.parametrize("raw", ["[null, null]", "[]", "1", '"x"', "true"])
def test_a_body_that_is_not_an_object_is_422_even_where_the_body_is_optional(
    aws: dict[str, str], lambda_context: Any, raw: str
) -> None:
    # Given a tenant, and the key-issuing route whose body is optional
    # When the body is JSON but not an object
    response = _issue_key_raw(lambda_context, raw)
    # Then 422 naming the body, and no key is issued
    assert response["statusCode"] == 422, response
    assert response_json(response)["field"] == "body"
