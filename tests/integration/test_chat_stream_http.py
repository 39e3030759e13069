"""Streamed chat through the local gateway over real HTTP: the function's chunks cross the sandbox's
process boundary and the gateway as they are written, read here by a Server-Sent Events client
library (sseclient-py) over urllib3, and by the contract checker."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from sseclient import SSEClient

from tests.conftest import REPO_ROOT
from tests.fakes.anthropic_server import FakeAnthropic, Reply, fake_anthropic
from tests.integration.conftest import LocalStack, start_test_stack


def open_stream(
    url: str, key: str, message: str, *, user: str = "alice", session_id: str | None = None
) -> urllib3.BaseHTTPResponse:
    body: dict[str, Any] = {"message": message, "stream": True}
    if session_id is not None:
        body["session_id"] = session_id
    return urllib3.request(
        "POST",
        url.rstrip("/") + "/chat",
        body=json.dumps(body),
        headers={"Content-Type": "application/json", "X-API-Key": key, "X-User-ID": user},
        preload_content=False,
        timeout=urllib3.Timeout(connect=5, read=60),
    )


def events_of(response: urllib3.BaseHTTPResponse) -> Iterator[tuple[float, str, Any]]:
    """(arrival time, event, data) as the SSE client library hands each event over."""
    for event in SSEClient(response.read_chunked()).events():
        yield time.monotonic(), event.event, json.loads(event.data)


def test_a_streamed_turn_read_with_an_sse_client_library(gateway: LocalStack) -> None:
    # Given a tenant (locally the offline echo model answers; on a stage, the real one)
    _, key = gateway.create_tenant("pro")
    # When an SSE client reads a streamed turn
    response = open_stream(gateway.url, key, "hello stream")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    received = [(name, data) for _, name, data in events_of(response)]
    # Then it got start, the deltas, and done, in order
    names = [name for name, _ in received]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"delta"}
    text = "".join(data["text"] for name, data in received if name == "delta")
    assert text
    done = received[-1][1]
    assert done["session_id"] == received[0][1]["session_id"]
    assert done["tokens"]["input"] > 0 and done["tokens"]["output"] > 0
    # And the turn is stored
    detail = gateway.request(
        "GET", f"/sessions/{done['session_id']}", key=key, headers={"X-User-ID": "alice"}
    )
    assert [message["content"] for message in detail.json["messages"]] == ["hello stream", text]


def test_a_streamed_turn_conforms_to_the_documented_events(gateway: LocalStack) -> None:
    # (gateway.request records the answer: the suite checks it against docs/openapi.json's events)
    _, key = gateway.create_tenant("basic")
    answer = gateway.request(
        "POST", "/chat", key=key, body={"message": "contract", "stream": True}, headers={"X-User-ID": "u"}
    )
    assert answer.status == 200
    assert answer.raw.startswith(b"event: start\n")


def test_errors_before_the_stream_are_json_with_their_status(gateway: LocalStack) -> None:
    _, key = gateway.create_tenant("pro")
    _, other_key = gateway.create_tenant("pro")
    alice = {"X-User-ID": "alice"}
    first = gateway.request("POST", "/chat", key=key, body={"message": "mine"}, headers=alice)
    # Another tenant's session id: 404 as JSON, no stream
    foreign = gateway.request(
        "POST",
        "/chat",
        key=other_key,
        body={"message": "peek", "stream": True, "session_id": first.json["session_id"]},
        headers=alice,
    )
    assert foreign.status == 404
    assert foreign.headers["content-type"].startswith("application/json")
    assert foreign.json["error"] == "not_found"
    # No key: API Gateway's 401 before any function
    unauthorized = gateway.request("POST", "/chat", body={"message": "x", "stream": True}, headers=alice)
    assert unauthorized.status == 401


# ---------------------------------------------------------------------- with the fake model
@pytest.fixture(scope="module")
def model() -> Iterator[FakeAnthropic]:
    with fake_anthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def streaming_stack(model: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A local stack whose chat function talks to the fake Messages API (its env is the stack's)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        patch.setenv("ANTHROPIC_BASE_URL", model.url)
        patch.setenv("LLM_MAX_RETRIES", "0")
        stack = start_test_stack(tmp_path_factory.mktemp("stream-home"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def fresh_model(model: FakeAnthropic) -> FakeAnthropic:
    model.script.clear()
    model.default = Reply()
    return model


def usage_tokens(stack: LocalStack, key: str) -> tuple[int, int]:
    month = stack.request("GET", "/usage", key=key).json["month"]
    return int(month["tokens_in"]), int(month["tokens_out"])


@pytest.mark.local_only("the fake Messages API paces the model's pieces")
def test_each_delta_reaches_the_client_when_the_model_writes_it(
    streaming_stack: LocalStack, fresh_model: FakeAnthropic
) -> None:
    # Given a model that writes a piece every 0.3 s
    _, key = streaming_stack.create_tenant("pro")
    fresh_model.default = Reply(pieces=["one ", "two ", "three ", "four"], piece_delay=0.3)
    # When a client streams a turn
    arrivals = [
        (at, data)
        for at, name, data in events_of(open_stream(streaming_stack.url, key, "pace"))
        if name == "delta"
    ]
    # Then the deltas arrived spread out as written, not together at the end
    assert [data["text"] for _, data in arrivals] == ["one ", "two ", "three ", "four"]
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap > 0.15 for gap in gaps), gaps


@pytest.mark.local_only("the fake Messages API; the stack's access log")
def test_a_client_that_leaves_after_the_first_delta_gets_its_turn_stored_and_billed_once(
    streaming_stack: LocalStack, fresh_model: FakeAnthropic
) -> None:
    # Given a model whose reply takes about 2 s, with 31 tokens in and 12 out
    _, key = streaming_stack.create_tenant("pro")
    pieces = [f"w{number} " for number in range(8)]
    fresh_model.default = Reply(pieces=pieces, piece_delay=0.25, input_tokens=31, output_tokens=12)
    # When the client reads the start and the first delta, then hangs up
    response = open_stream(streaming_stack.url, key, "leaving")
    events = events_of(response)
    _, first, start = next(events)
    _, second, _ = next(events)
    assert (first, second) == ("start", "delta")
    response.release_conn()
    response.close()
    # Then the whole turn is stored once the model finished
    session_id = start["session_id"]
    deadline = time.monotonic() + 30
    while True:
        detail = streaming_stack.request(
            "GET", f"/sessions/{session_id}", key=key, headers={"X-User-ID": "alice"}
        )
        if detail.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [message["content"] for message in detail.json["messages"]] == ["leaving", "".join(pieces)]
    # And its tokens are counted exactly once
    assert usage_tokens(streaming_stack, key) == (31, 12)
    # And the access log has the request's line, written when the client left (status 200)
    lines = [json.loads(line) for line in (streaming_stack.home / "access.log").read_text().splitlines()]
    chat_lines = [line for line in lines if line["resourcePath"] == "/chat" and line["tenantId"] != "-"]
    assert any(line["status"] == "200" and int(line["responseLength"]) > 0 for line in chat_lines)


@pytest.mark.local_only("the fake Messages API")
def test_two_tenants_streaming_at_once_get_only_their_own_chunks(
    streaming_stack: LocalStack, fresh_model: FakeAnthropic
) -> None:
    # Given two tenants and a model that echoes each prompt slowly, piece by piece
    tenants = [streaming_stack.create_tenant("pro") for _ in range(2)]
    fresh_model.default = Reply(piece_delay=0.1)
    texts: dict[str, str] = {}
    errors: list[BaseException] = []

    def chat(tenant_id: str, key: str) -> None:
        try:
            message = f"from {tenant_id} " + " ".join(f"{tenant_id}-{n}" for n in range(6))
            received = list(events_of(open_stream(streaming_stack.url, key, message)))
            texts[tenant_id] = "".join(data["text"] for _, name, data in received if name == "delta")
            assert received[-1][1] == "done"
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            errors.append(exc)

    # When both stream at the same time
    threads = [threading.Thread(target=chat, args=tenant) for tenant in tenants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Then each got exactly its own reply
    assert not errors, errors
    for tenant_id, _ in tenants:
        assert texts[tenant_id] == f"fake reply to: from {tenant_id} " + " ".join(
            f"{tenant_id}-{n}" for n in range(6)
        )


@pytest.mark.local_only("the fake Messages API")
def test_an_overloaded_model_mid_stream_ends_it_with_an_error_event(
    streaming_stack: LocalStack, fresh_model: FakeAnthropic
) -> None:
    _, key = streaming_stack.create_tenant("pro")
    fresh_model.default = Reply(text="a b c d", fail_after=2, input_tokens=9)
    received = [(name, data) for _, name, data in events_of(open_stream(streaming_stack.url, key, "x"))]
    assert [name for name, _ in received] == ["start", "delta", "delta", "error"]
    assert received[-1][1]["error"] == "upstream_busy"
    sessions = streaming_stack.request("GET", "/sessions", key=key, headers={"X-User-ID": "alice"})
    assert sessions.json["sessions"] == []
    assert usage_tokens(streaming_stack, key) == (9, 1)


@pytest.mark.local_only("runs tenantry's own commands against the local stack")
def test_tenantry_chat_and_tenantry_invoke_print_the_stream(
    streaming_stack: LocalStack, fresh_model: FakeAnthropic
) -> None:
    _, key = streaming_stack.create_tenant("pro")
    fresh_model.default = Reply(text="Hello from the terminal")
    chat = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "tenantry_cli", "chat", "hi", "--key", key, "--url", streaming_stack.url],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout == "Hello from the terminal\n"
    assert chat.stderr.startswith("session s")
    invoke = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "tenantry_cli", "invoke", "ChatFunction", "-e", "events/chat-stream.json",
         "--home", str(streaming_stack.home)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert invoke.returncode == 0, invoke.stderr
    assert "event: start" in invoke.stdout and "event: done" in invoke.stdout
    assert '"statusCode":200' in invoke.stderr
