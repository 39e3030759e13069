"""GET /events/stream through the events function against moto (tenant-scoped credentials and
IAM's partition wall in force): the answer as API Gateway reads it from the response stream (the
prelude, then Server-Sent Events), validation as JSON answers, two tenants, the sample event."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tenantry import streaming, tenancy
from tenantry.models.tenants import CreateTenantRequest
from tests.conftest import REPO_ROOT, FakeLambdaContext, api_event, load_function, tenant_context
from tests.unit.test_subscriptions import Sse, parse_events


@dataclass
class ReadStream:
    """A response stream read as API Gateway reads it."""

    data: bytearray = field(default_factory=bytearray)

    def write(self, data: bytes) -> bool:
        self.data += data
        return True

    @property
    def prelude(self) -> dict[str, Any]:
        head, _, _ = bytes(self.data).partition(streaming.DELIMITER)
        return dict(json.loads(head))

    @property
    def body(self) -> bytes:
        return bytes(self.data).partition(streaming.DELIMITER)[2]

    @property
    def events(self) -> list[Sse]:
        return parse_events(self.body)[0]

    def header(self, name: str) -> str | None:
        for key, values in (self.prelude.get("multiValueHeaders") or {}).items():
            if key.lower() == name.lower():
                return str(values[-1])
        for key, value in (self.prelude.get("headers") or {}).items():
            if key.lower() == name.lower():
                return str(value)
        return None


class Streams:
    def __init__(self) -> None:
        self.handler = load_function("events").lambda_handler

    def call(self, method: str, path: str, tenant: str = "acme", **kwargs: Any) -> ReadStream:
        context: Any = FakeLambdaContext()
        context.response_stream = read = ReadStream()
        event = api_event(method, path, authorizer=tenant_context(tenant, "pro"), **kwargs)
        answer = self.handler(event, context)
        if answer is not None:  # a buffered route: its answer, as the prelude and body would carry it
            read.write(streaming.prelude(answer) + streaming.body_bytes(answer))
        return read

    def publish(self, tenant: str, *types: str) -> None:
        for kind in types:
            read = self.call("POST", "/events", tenant, body={"type": kind, "data": {"secret": tenant}})
            assert read.prelude["statusCode"] == 201

    def subscribe(
        self, tenant: str = "acme", headers: dict[str, str] | None = None, **query: str
    ) -> ReadStream:
        return self.call("GET", "/events/stream", tenant, query=query or None, headers=headers)


@pytest.fixture
def streams(aws: dict[str, str]) -> Streams:
    for tenant_id in ("acme", "globex"):
        tenancy.create_tenant(CreateTenantRequest(name=tenant_id.title(), tier="pro", tenant_id=tenant_id))
    return Streams()


def test_a_subscription_answers_an_event_stream_of_the_tenants_events(streams: Streams) -> None:
    # Given two tenants' events
    streams.publish("acme", "a.one", "a.two")
    streams.publish("globex", "g.one")
    # When acme subscribes for a second
    read = streams.subscribe(max_seconds="1")
    # Then API Gateway finds a 200 text/event-stream prelude, not to be cached or buffered
    assert read.prelude["statusCode"] == 200
    assert read.header("Content-Type") == "text/event-stream"
    assert read.header("Cache-Control") == "no-cache"
    # And the stream holds acme's events only, each with its id, then the end
    assert [(sse.event, sse.id) for sse in read.events] == [("event", "1"), ("event", "2"), ("end", "2")]
    assert {sse.data["data"]["secret"] for sse in read.events if sse.event == "event"} == {"acme"}
    assert read.events[-1].data == {"next_from": 3}


def test_each_event_is_what_get_events_position_answers(streams: Streams) -> None:
    streams.publish("acme", "a.one")
    single = streams.call(
        "GET", "/events/1", resource="/events/{position}", path_parameters={"position": "1"}
    )
    read = streams.subscribe(max_seconds="1")
    assert read.events[0].data == json.loads(single.body)


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ({"from": "0"}, None, "from"),
        ({"from": "x"}, None, "from"),
        ({"max_seconds": "0"}, None, "max_seconds"),
        ({"max_seconds": "901"}, None, "max_seconds"),
        ({"limit": "0"}, None, "limit"),
        ({"type": "a b"}, None, "type"),
        ({"consumer": "bad name"}, None, "consumer"),
        ({"from": "1", "consumer": "billing"}, None, "consumer"),
        ({}, {"Last-Event-ID": "abc"}, "last-event-id"),
        ({}, {"Last-Event-ID": "-1"}, "last-event-id"),
        ({}, {"Last-Event-ID": "01"}, "last-event-id"),
        ({}, {"Last-Event-ID": str(2**53)}, "last-event-id"),
    ],
)
def test_bad_parameters_are_a_json_422_before_any_stream(
    streams: Streams, query: dict[str, str], headers: dict[str, str] | None, field: str
) -> None:
    read = streams.subscribe(headers=headers, **query)
    assert read.prelude["statusCode"] == 422
    assert read.header("Content-Type") == "application/json"
    answer = json.loads(read.body)
    assert answer["field"] == field.lower(), answer
    assert answer["error"] == "validation_error"


def test_the_stream_route_is_not_taken_for_an_event_position(streams: Streams) -> None:
    # GET /events/stream is its own route; a position is still a position
    streams.publish("acme", "a.one")
    assert streams.subscribe(max_seconds="1").prelude["statusCode"] == 200
    unknown = streams.call(
        "GET", "/events/7", resource="/events/{position}", path_parameters={"position": "7"}
    )
    assert unknown.prelude["statusCode"] == 404


def test_the_sample_event_streams_through_the_handler(streams: Streams) -> None:
    # Given the sample's tenant and one event of the type it filters on
    tenancy.create_tenant(CreateTenantRequest(name="Sample", tier="pro", tenant_id="sample"))
    streams.publish("sample", "order.placed", "other")
    payload = json.loads((REPO_ROOT / "events" / "event-stream.json").read_text())
    context: Any = FakeLambdaContext()
    context.response_stream = read = ReadStream()
    # When the handler runs with it (Last-Event-ID 0, type order.placed, max_seconds 2)
    assert streams.handler(payload, context) is None
    # Then the stream carried the one matching event and its end
    assert read.prelude["statusCode"] == 200
    assert [(sse.event, sse.id) for sse in read.events] == [("event", "1"), ("end", "2")]
