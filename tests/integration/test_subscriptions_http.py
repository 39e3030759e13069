"""Live subscriptions (GET /events/stream) and conditional appends over real HTTP, through the
gateway: subscriptions read with a Server-Sent Events client library (sseclient-py over urllib3),
writers publishing concurrently, tenants suspended and offboarded under an open subscription, a
client that hangs up, the CLI's tail."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import urllib3
from sseclient import SSEClient

from tests.integration.conftest import REPO_ROOT, LocalStack

# Locally the change feed delivers at once; a deployed stage reads HEAD once a second and the
# tenant's record every 5 s.
WAIT_SECONDS = 15.0


@dataclass
class Received:
    event: str
    id: str | None
    data: Any
    at: float


@dataclass
class Subscription:
    """An open subscription read by sseclient-py on a thread of its own."""

    response: urllib3.BaseHTTPResponse
    received: list[Received] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Subscription:
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        try:
            for event in SSEClient(self.response.read_chunked()).events():
                with self._changed:
                    self.received.append(
                        Received(event.event, event.id, json.loads(event.data), time.monotonic())
                    )
                    self._changed.notify_all()
        except Exception:  # noqa: BLE001, S110 - the connection closed under the reader (a test closed it)
            pass
        finally:
            self.ended.set()
            with self._changed:
                self._changed.notify_all()

    def wait_for(self, done: Any, seconds: float = WAIT_SECONDS) -> list[Received]:
        deadline = time.monotonic() + seconds
        with self._changed:
            while not done(self.received) and time.monotonic() < deadline and not self.ended.is_set():
                self._changed.wait(deadline - time.monotonic())
            return list(self.received)

    def until_end(self, seconds: float = WAIT_SECONDS) -> list[Received]:
        self.ended.wait(seconds)
        return list(self.received)

    def positions(self) -> list[int]:
        return [int(item.data["position"]) for item in self.received if item.event == "event"]


def subscribe(
    stack: LocalStack, key: str, headers: dict[str, str] | None = None, **query: Any
) -> urllib3.BaseHTTPResponse:
    url = stack.url.rstrip("/") + "/events/stream" + (f"?{urlencode(query)}" if query else "")
    return urllib3.request(
        "GET",
        url,
        headers={"X-API-Key": key, "Accept": "text/event-stream", **(headers or {})},
        preload_content=False,
        timeout=urllib3.Timeout(connect=5, read=60),
    )


def opened(stack: LocalStack, key: str, **options: Any) -> Subscription:
    response = subscribe(stack, key, **options)
    assert response.status == 200, response.data
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return Subscription(response).start()


def publish(stack: LocalStack, key: str, body: dict[str, Any]) -> Any:
    answer = stack.request("POST", "/events", key=key, body=body)
    assert answer.status == 201, answer.raw
    return answer.json


def batch(kind: str, count: int, **data: Any) -> dict[str, Any]:
    return {"events": [{"type": kind, "data": {"n": number, **data}} for number in range(count)]}


# ---------------------------------------------------------------------------- delivery


def test_replay_hands_over_to_live_events_with_no_gap_and_no_duplicate(gateway: LocalStack) -> None:
    # Given a stream of 297 events
    _, key = gateway.create_tenant("enterprise")
    for _ in range(3):
        publish(gateway, key, batch("before", 99))
    # When a client subscribes from the start while four writers publish 60 more, concurrently
    # (it ends after that many events; max_seconds only bounds a failing run)
    total = 297 + 4 * 5 * 3
    subscription = opened(gateway, key, limit=total, max_seconds=120)

    def writer(number: int) -> None:
        for round_ in range(5):
            publish(gateway, key, batch(f"writer.{number}", 3, round=round_))

    with ThreadPoolExecutor(4) as writers:
        list(writers.map(writer, range(4)))
    # Then it received every position from 1 to the last exactly once, in order, each as its id
    received = subscription.wait_for(lambda items: len([i for i in items if i.event == "event"]) >= total)
    events = [item for item in received if item.event == "event"]
    assert [int(item.data["position"]) for item in events] == list(range(1, total + 1))
    assert all(item.id == str(item.data["position"]) for item in events)
    # And the stream then closed with `end`, where to resume
    last = subscription.until_end()[-1]
    assert (last.event, last.data, last.id) == ("end", {"next_from": total + 1}, str(total))


def test_last_event_id_resumes_exactly_after_the_last_event_received(gateway: LocalStack) -> None:
    _, key = gateway.create_tenant("pro")
    publish(gateway, key, batch("t", 6))
    # Given a first subscription that ended after three events
    first = opened(gateway, key, limit=3).until_end()
    assert [item.event for item in first] == ["event", "event", "event", "end"]
    assert first[-1].data == {"next_from": 4}
    # When the client reconnects with the id it saw last (an EventSource sends the end's own id)
    again = opened(
        gateway, key, headers={"Last-Event-ID": first[-1].id or ""}, limit=3, max_seconds=30, **{"from": 1}
    )
    # Then it gets what follows, nothing twice (Last-Event-ID wins over the URL's from)
    again.until_end()
    assert again.positions() == [4, 5, 6]


def test_a_consumer_starts_after_its_checkpoint(gateway: LocalStack) -> None:
    _, key = gateway.create_tenant("pro")
    publish(gateway, key, batch("t", 5))
    assert gateway.request("PUT", "/consumers/projector", key=key, body={"position": 3}).status == 200
    subscription = opened(gateway, key, consumer="projector", limit=2, max_seconds=30)
    subscription.until_end()
    assert subscription.positions() == [4, 5]
    fresh = opened(gateway, key, consumer="never-saved", limit=5, max_seconds=30)
    fresh.until_end()
    assert fresh.positions() == [1, 2, 3, 4, 5]


def test_a_type_filter_delivers_only_that_type_live_too(gateway: LocalStack) -> None:
    _, key = gateway.create_tenant("pro")
    publish(
        gateway, key, {"events": [{"type": "order.placed", "data": {}}, {"type": "order.paid", "data": {}}]}
    )
    subscription = opened(gateway, key, type="order.paid", limit=2, max_seconds=60)
    subscription.wait_for(lambda items: len(items) >= 1)
    publish(
        gateway, key, {"events": [{"type": "order.placed", "data": {}}, {"type": "order.paid", "data": {}}]}
    )
    subscription.until_end()
    assert subscription.positions() == [2, 4]
    assert subscription.received[-1].data == {"next_from": 5}


def test_a_subscription_sees_only_its_own_tenants_events(gateway: LocalStack) -> None:
    # Given two tenants, each subscribed to its stream
    _, acme = gateway.create_tenant("pro")
    _, globex = gateway.create_tenant("pro")
    publish(gateway, acme, {"type": "acme.secret", "data": {"owner": "acme"}})
    # (acme's ends after its two events; globex's waits 10 s for anything that is not its own)
    acme_stream = opened(gateway, acme, limit=2, max_seconds=60)
    globex_stream = opened(gateway, globex, limit=2, max_seconds=10)
    # When both publish while subscribed
    publish(gateway, globex, {"type": "globex.secret", "data": {"owner": "globex"}})
    publish(gateway, acme, {"type": "acme.secret", "data": {"owner": "acme"}})
    # Then each got its own events only, at its own positions
    acme_events = [item.data for item in acme_stream.until_end() if item.event == "event"]
    globex_events = [item.data for item in globex_stream.until_end() if item.event == "event"]
    assert [(event["position"], event["data"]["owner"]) for event in acme_events] == [
        (1, "acme"),
        (2, "acme"),
    ]
    assert [(event["position"], event["data"]["owner"]) for event in globex_events] == [(1, "globex")]


def test_a_subscription_conforms_to_the_documented_stream(gateway: LocalStack) -> None:
    # (gateway.request records the answer: the suite checks each event against docs/openapi.json)
    _, key = gateway.create_tenant("basic")
    publish(gateway, key, {"type": "t", "data": {"n": 1}})
    answer = gateway.request("GET", "/events/stream?max_seconds=1", key=key)
    assert answer.status == 200
    assert answer.raw.startswith(b"event: event\nid: 1\n")
    refused = gateway.request("GET", "/events/stream?from=1&consumer=c", key=key)
    assert (refused.status, refused.json["field"]) == (422, "consumer")


@pytest.mark.local_only("the local gateway's sandbox pools")
def test_open_subscriptions_never_make_the_functions_other_requests_wait(gateway: LocalStack) -> None:
    # Given more open subscriptions than a function's pool holds sandboxes (8)
    _, key = gateway.create_tenant("enterprise")
    subscriptions = [opened(gateway, key, max_seconds=60) for _ in range(10)]
    # When the tenant publishes and reads
    published = gateway.request("POST", "/events", key=key, body={"type": "t", "data": {}})
    page = gateway.request("GET", "/events", key=key)
    # Then both answered while every subscription was still open (as Lambda scales out)
    assert (published.status, page.status) == (201, 200)
    assert not any(subscription.ended.is_set() for subscription in subscriptions)
    # And every subscription got the event
    for subscription in subscriptions:
        subscription.wait_for(lambda items: len(items) >= 1)
        assert subscription.positions() == [1]
        subscription.response.close()


# ---------------------------------------------------------------------------- how it ends


@pytest.mark.parametrize("how", ["suspended", "offboarded"])
def test_a_suspended_or_offboarded_tenants_open_subscription_ends_with_an_error(
    gateway: LocalStack, how: str
) -> None:
    # Given a tenant with an open subscription
    tenant_id, key = gateway.create_tenant("pro")
    publish(gateway, key, {"type": "t", "data": {}})
    subscription = opened(gateway, key, max_seconds=60)
    subscription.wait_for(lambda items: len(items) >= 1)
    # When an operator suspends or offboards it
    if how == "suspended":
        changed = gateway.request(
            "PATCH", f"/tenants/{tenant_id}", key=gateway.admin_key, body={"status": "suspended"}
        )
    else:
        changed = gateway.request("DELETE", f"/tenants/{tenant_id}", key=gateway.admin_key)
    assert changed.status == 200, changed.raw
    changed_at = time.monotonic()
    # Then the stream ends with an error event saying why, within the documented bound
    received = subscription.until_end(WAIT_SECONDS)
    assert subscription.ended.is_set()
    last = received[-1]
    assert last.event == "error"
    assert last.data["error"] == ("tenant_suspended" if how == "suspended" else "tenant_offboarded")
    assert last.at - changed_at < 5.0 + 1.0


@pytest.mark.local_only("reads the events function's log file")
def test_a_client_that_hangs_up_stops_the_functions_work(gateway: LocalStack) -> None:
    # Given an open subscription
    _, key = gateway.create_tenant("pro")
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    connection.request("GET", "/events/stream?max_seconds=120", headers={"X-API-Key": key})
    response = connection.getresponse()
    assert response.status == 200
    request_id = response.getheader("x-amzn-RequestId")
    log = gateway.home / "logs" / "EventsFunction.log"
    # When the client closes its connection
    assert connection.sock is not None
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    closed_at = time.monotonic()
    # Then the function notices and returns within the documented bound (2 s locally)
    left = None
    while left is None and time.monotonic() - closed_at < 10:
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("correlation_id") == request_id and record.get("message") == "the subscriber left":
                left = time.monotonic()
        time.sleep(0.05)
    assert left is not None, "the function never noticed the client left"
    assert left - closed_at < 3.0


@pytest.mark.local_only("exact token-bucket counts; API Gateway applies usage-plan throttles best effort")
def test_a_subscription_is_a_request_metered_and_limited_like_any_other(gateway: LocalStack) -> None:
    # Given a basic tenant (burst 10)
    tenant_id, key = gateway.create_tenant("basic")
    # When it subscribes once, then spends the rest of its burst
    assert gateway.request("GET", "/events/stream?max_seconds=1", key=key).status == 200
    statuses = [gateway.request("GET", "/metrics", key=key).status for _ in range(9)]
    assert statuses == [200] * 9
    # Then one more subscription is refused at the edge, as JSON, before any stream
    refused = gateway.request("GET", "/events/stream?max_seconds=1", key=key)
    assert refused.status == 429
    assert refused.json["message"] == "Too Many Requests"
    assert refused.headers["content-type"].startswith("application/json")
    # And the usage counts both subscriptions as requests (one allowed, one denied)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        month = gateway.request("GET", f"/tenants/{tenant_id}/usage", key=gateway.admin_key).json["month"]
        if month["requests"] >= 11:
            break
        time.sleep(0.2)
    assert (month["requests"], month["allowed"], month["denied"]) == (11, 10, 1)


# ---------------------------------------------------------------------------- conditional appends


def test_eight_concurrent_writers_on_one_expected_position_one_wins(gateway: LocalStack) -> None:
    # Given a stream at 2
    _, key = gateway.create_tenant("enterprise")
    publish(gateway, key, batch("t", 2))
    barrier = threading.Barrier(8)

    def writer(number: int) -> Any:
        barrier.wait()
        body = {"type": "decision", "data": {"writer": number}, "expected_position": 2}
        return gateway.request("POST", "/events", key=key, body=body)

    # When eight writers append after position 2 at the same moment
    with ThreadPoolExecutor(8) as writers:
        answers = list(writers.map(writer, range(8)))
    # Then exactly one landed at 3, and the seven others were told the stream is at 3 now
    won = [answer for answer in answers if answer.status == 201]
    lost = [answer for answer in answers if answer.status != 201]
    assert len(won) == 1 and won[0].json == {"position": 3}
    assert {(answer.status, answer.json["error"], answer.json["current_position"]) for answer in lost} == {
        (409, "wrong_expected_position", 3)
    }
    page = gateway.request("GET", "/events?from=3", key=key).json
    assert len(page["events"]) == 1


# ---------------------------------------------------------------------------- the CLI


def test_the_cli_tails_a_stream_across_reconnects(gateway: LocalStack) -> None:
    # Given two stored events
    _, key = gateway.create_tenant("pro")
    publish(gateway, key, batch("before", 2))
    # When the CLI tails it (resubscribing every second), and two more are published meanwhile
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tenantry_cli",
            "events",
            "tail",
            "--count",
            "4",
            "--max-seconds",
            "1",
            "--json",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "TENANTRY_URL": gateway.url, "TENANTRY_KEY": key},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)  # past its first reconnect
    publish(gateway, key, batch("after", 2))
    out, err = tail.communicate(timeout=30)
    # Then it printed the four events once each, in order, and stopped
    assert tail.returncode == 0, err
    printed = [json.loads(line) for line in out.splitlines()]
    assert [event["position"] for event in printed] == [1, 2, 3, 4]
    assert [event["type"] for event in printed] == ["before", "before", "after", "after"]


def test_the_cli_says_why_a_subscription_is_refused(gateway: LocalStack, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tenantry_cli",
            "events",
            "tail",
            "--key",
            "tnt_live_unknown_key_of_no_tenant",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "TENANTRY_URL": gateway.url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "401" in result.stderr
