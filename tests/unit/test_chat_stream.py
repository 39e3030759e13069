"""Streamed chat turns through the chat function: the real anthropic client against the fake
Messages API in streaming mode, the answer read from the function's response stream as API
Gateway reads it (prelude, delimiter, then Server-Sent Events)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from local import faults
from tenantry import chat, streaming
from tenantry.stores import usage as usage_store
from tests.conftest import REPO_ROOT, FakeLambdaContext, add_tokens, api_event, tenant_context
from tests.fakes.anthropic_server import FakeAnthropic, Reply
from tests.unit.conftest import TIERS, ChatApi, answers_lost, month_tokens

TEXT = "Streams arrive one piece at a time"


@dataclass
class RecordedStream:
    """A response stream as the runtime hands it to the handler; ``leave_after`` deltas, the
    client goes away (writes answer False from then on, as they do once nobody reads)."""

    leave_after: int | None = None
    data: bytearray = field(default_factory=bytearray)
    deltas_written: int = 0

    def write(self, data: bytes) -> bool:
        if self.leave_after is not None and self.deltas_written >= self.leave_after:
            return False
        self.data += data
        if data.startswith(b"event: delta"):
            self.deltas_written += 1
        return True

    @property
    def metadata(self) -> dict[str, Any]:
        head, _, _ = bytes(self.data).partition(streaming.DELIMITER)
        return dict(json.loads(head))

    def header(self, name: str) -> str | None:
        """A header of the prelude, from ``headers`` or ``multiValueHeaders`` (Powertools' REST
        answers use the latter)."""
        metadata = self.metadata
        for key, values in (metadata.get("multiValueHeaders") or {}).items():
            if key.lower() == name.lower():
                return str(values[-1])
        for key, value in (metadata.get("headers") or {}).items():
            if key.lower() == name.lower():
                return str(value)
        return None

    @property
    def body(self) -> bytes:
        return bytes(self.data).partition(streaming.DELIMITER)[2]

    @property
    def events(self) -> list[tuple[str, Any]]:
        return parse_sse(self.body)

    @property
    def comments(self) -> int:
        return sum(1 for line in self.body.decode().splitlines() if line.startswith(":"))


def parse_sse(body: bytes) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for block in body.decode().split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        found.append((fields["event"], json.loads(fields["data"])))
    return found


class ShortContext(FakeLambdaContext):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._until = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._until - time.monotonic()) * 1000)


def stream_turn(
    api: ChatApi,
    body: dict[str, Any],
    *,
    tenant: str = "acme",
    user: str = "alice",
    stream: RecordedStream | None = None,
    context: Any = None,
) -> RecordedStream:
    recorded = stream or RecordedStream()
    invocation: Any = context or FakeLambdaContext()
    invocation.response_stream = recorded
    event = api_event(
        "POST",
        "/chat",
        body={"stream": True, **body},
        authorizer=tenant_context(tenant, TIERS[tenant]),
        headers={"X-User-ID": user},
    )
    assert api.handler(event, invocation) is None  # the answer went out through the stream
    return recorded


def text_of(events: list[tuple[str, Any]]) -> str:
    return "".join(data["text"] for name, data in events if name == "delta")


def stored_turns(api: ChatApi, session_id: str, tenant: str = "acme") -> list[str]:
    status, detail = api.session(session_id, tenant=tenant)
    return [] if status == 404 else [message["content"] for message in detail["messages"]]


def test_a_streamed_turn_sends_the_reply_as_it_is_written_then_stores_it(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    # Given the model streams its reply
    model.default = Reply(text=TEXT, input_tokens=13, output_tokens=9)
    # When a user asks for a streamed turn
    recorded = stream_turn(api, {"message": "tell me"})
    # Then API Gateway's prelude says 200 text/event-stream, and the events are start, the deltas, done
    assert recorded.metadata["statusCode"] == 200
    assert recorded.header("Content-Type") == "text/event-stream"
    names = [name for name, _ in recorded.events]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"delta"}
    assert len(names) == len(TEXT.split(" ")) + 2
    start, done = recorded.events[0][1], recorded.events[-1][1]
    assert start == {"session_id": done["session_id"], "model": "claude-haiku-4-5"}
    assert text_of(recorded.events) == TEXT
    assert done == {
        "session_id": start["session_id"],
        "model": "claude-haiku-4-5",
        "tokens": {"input": 13, "output": 9},
        "stop_reason": "end_turn",
    }
    # And the model was asked to stream with the tier's stream max_tokens
    assert model.last["stream"] is True
    assert model.last["max_tokens"] == 2048
    # And the turn is stored and its tokens metered once
    assert stored_turns(api, start["session_id"]) == ["tell me", TEXT]
    assert month_tokens("acme", fixed_clock) == (13, 9)


def test_an_overloaded_model_mid_stream_ends_it_with_an_error_event_and_stores_nothing(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    # Given a session with one turn, and a model that is overloaded after two pieces
    _, first, _ = api.say("first")
    session_id = first["session_id"]
    before = month_tokens("acme", fixed_clock)
    model.script.append(Reply(text=TEXT, fail_after=2, input_tokens=21))
    # When the user streams the next turn
    recorded = stream_turn(api, {"message": "second", "session_id": session_id})
    # Then two deltas arrive, then the error event in the API's error shape
    names = [name for name, _ in recorded.events]
    assert names == ["start", "delta", "delta", "error"]
    error = recorded.events[-1][1]
    assert error["error"] == "upstream_busy"
    assert error["request_id"] and error["message"]
    # And the session is as it was, and the tokens the model reported are metered once
    assert stored_turns(api, session_id) == ["first", "fake reply to: first"]
    assert month_tokens("acme", fixed_clock) == (before[0] + 21, before[1] + 1)


def test_a_dropped_model_connection_is_an_error_event_with_nothing_stored(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    model.script.append(Reply(text=TEXT, drop_after=1, input_tokens=5))
    recorded = stream_turn(api, {"message": "hello"})
    names = [name for name, _ in recorded.events]
    assert names == ["start", "delta", "error"]
    assert recorded.events[-1][1]["error"] == "upstream_interrupted"
    session_id = recorded.events[0][1]["session_id"]
    assert stored_turns(api, session_id) == []
    assert month_tokens("acme", fixed_clock) == (5, 1)


def test_a_model_slower_than_the_deadline_is_cut_with_model_timeout_before_the_function_ends(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    # Given 8 s left in the invocation (3 for the model once the write's reserve is kept back)
    # and a model that writes a piece every half second, for 10 s
    model.script.append(Reply(pieces=[f"w{n} " for n in range(20)], piece_delay=0.5, input_tokens=4))
    started = time.monotonic()
    recorded = stream_turn(api, {"message": "slowly"}, context=ShortContext(8.0))
    elapsed = time.monotonic() - started
    # Then the stream ends with model_timeout well before the invocation's end, nothing stored
    assert recorded.events[-1][0] == "error"
    assert recorded.events[-1][1]["error"] == "model_timeout"
    # (the model alone would take 10 s; the invocation has 8)
    assert 8 - chat.STREAM_WRITE_RESERVE_SECONDS - 0.5 <= elapsed < 8
    assert 1 <= len([name for name, _ in recorded.events if name == "delta"]) <= 7
    assert stored_turns(api, recorded.events[0][1]["session_id"]) == []
    # And what the model had reported is metered
    assert month_tokens("acme", fixed_clock) == (4, 1)


def test_a_client_that_leaves_after_the_first_delta_still_gets_its_turn_stored_and_billed_once(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    # Given the client goes away after reading the first delta
    model.default = Reply(text=TEXT, input_tokens=17, output_tokens=8)
    recorded = stream_turn(api, {"message": "bye"}, stream=RecordedStream(leave_after=1))
    # Then nothing more was written to it
    assert [name for name, _ in recorded.events] == ["start", "delta"]
    # But the model's whole reply is stored, and its tokens counted exactly once
    session_id = recorded.events[0][1]["session_id"]
    assert stored_turns(api, session_id) == ["bye", TEXT]
    assert month_tokens("acme", fixed_clock) == (17, 8)


def test_a_streamed_turn_whose_write_answer_is_lost_after_the_deltas_is_done_and_stored_once(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    # Given the model streams its reply, and once the deltas are out the turn's transaction commits
    # while its answer is lost and botocore's three resends are answered 500 too
    model.default = Reply(text=TEXT, input_tokens=11, output_tokens=7)
    with faults.activate("") as injector:
        answers_lost(injector, committed=True, sends=4)
        # When a user asks for a streamed turn
        recorded = stream_turn(api, {"message": "again"})
    # Then the stream ends with done (the resend met its own bill marker), not with an error
    assert injector.injected == {"dynamodb:TransactWriteItems:InternalServerError": 4}
    names = [name for name, _ in recorded.events]
    assert names[0] == "start" and names[-1] == "done"
    assert text_of(recorded.events) == TEXT
    # And the turn is stored once and its tokens counted once
    session_id = recorded.events[0][1]["session_id"]
    assert stored_turns(api, session_id) == ["again", TEXT]
    assert month_tokens("acme", fixed_clock) == (11, 7)


def test_keep_alive_comments_flow_while_the_model_is_silent(
    api: ChatApi, model: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat, "KEEP_ALIVE_SECONDS", 0.1)
    model.script.append(Reply(pieces=["late"], piece_delay=0.6))
    recorded = stream_turn(api, {"message": "wait"})
    assert recorded.comments >= 3
    assert text_of(recorded.events) == "late"


def test_errors_found_before_the_stream_are_plain_json_answers(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    # Another tenant's session: 404, and the model is never asked
    _, theirs, _ = api.say("mine", tenant="globex")
    foreign = stream_turn(api, {"message": "peek", "session_id": theirs["session_id"]})
    assert foreign.metadata["statusCode"] == 404
    assert foreign.header("Content-Type") == "application/json"
    assert json.loads(foreign.body)["error"] == "not_found"
    # A spent token budget: 429 with Retry-After
    add_tokens("acme", usage_store.month_period(fixed_clock), 100_000, 0)
    spent = stream_turn(api, {"message": "more"})
    assert spent.metadata["statusCode"] == 429
    assert int(spent.header("Retry-After") or 0) > 0
    assert json.loads(spent.body)["error"] == "token_budget_exceeded"
    assert len(model.requests) == 1  # only globex's turn reached the model


def test_a_model_that_refuses_before_streaming_is_a_503_json_answer(
    api: ChatApi, model: FakeAnthropic
) -> None:
    model.script.append(Reply(status=529))
    recorded = stream_turn(api, {"message": "busy?"})
    assert recorded.metadata["statusCode"] == 503
    assert json.loads(recorded.body)["error"] == "upstream_busy"
    assert recorded.header("Content-Type") == "application/json"


def test_stream_must_be_a_boolean(api: ChatApi) -> None:
    recorded = stream_turn(api, {"message": "hi", "stream": "yes"})
    assert recorded.metadata["statusCode"] == 422
    assert json.loads(recorded.body)["errors"][0]["field"] == "stream"


def test_without_stream_the_json_answer_is_unchanged_on_the_streamed_route(
    api: ChatApi, model: FakeAnthropic
) -> None:
    recorded = stream_turn(api, {"message": "json please", "stream": False})
    assert recorded.metadata["statusCode"] == 200
    assert recorded.header("Content-Type") == "application/json"
    assert json.loads(recorded.body)["response"] == "fake reply to: json please"


def test_the_echo_provider_streams_offline(api: ChatApi) -> None:
    recorded = stream_turn(api, {"message": "hello there"})
    assert text_of(recorded.events) == "echo: hello there"
    assert recorded.events[-1][1]["model"] == "echo-1"


def test_the_sample_stream_event_runs_through_the_handler(api: ChatApi) -> None:
    from tenantry import tenancy
    from tenantry.models.tenants import CreateTenantRequest

    tenancy.create_tenant(CreateTenantRequest(name="Sample tenant", tier="pro", tenant_id="sample"))
    payload = json.loads((REPO_ROOT / "events" / "chat-stream.json").read_text())
    context: Any = FakeLambdaContext()
    context.response_stream = recorded = RecordedStream()
    assert api.handler(payload, context) is None
    assert [name for name, _ in recorded.events][-1] == "done"


def test_a_streamed_route_without_a_response_stream_is_a_misconfiguration(api: ChatApi) -> None:
    # The managed runtime hands the handler no stream: API Gateway would find no prelude (502).
    status, _, _ = api.say("hi")  # JSON turns still answer as before
    assert status == 200
    event = api_event(
        "POST", "/chat", body={"message": "hi", "stream": True}, authorizer=tenant_context("acme"),
        headers={"X-User-ID": "alice"},
    )  # fmt: skip
    response = api.handler(event, FakeLambdaContext())
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["error"] == "misconfigured"


def test_a_requests_tokens_count_once_whoever_counts_them(api: ChatApi, fixed_clock: datetime) -> None:
    tokens = usage_store.TurnTokens(
        "acme", "req-1", usage_store.month_period(fixed_clock), usage_store.day_period(fixed_clock), "m", 3, 4
    )
    from tenantry import aws, credentials

    with aws.tenant_scope(credentials.scoped_access("acme")):
        assert usage_store.DYNAMODB.add_turn_tokens(tokens) is True
        assert usage_store.DYNAMODB.add_turn_tokens(tokens) is False
    assert month_tokens("acme", fixed_clock) == (3, 4)
