"""The chat function as Lambda runs it: the layer's exec wrapper, then tenantry.streaming_runtime,
in a subprocess with the chat function's own env (template.yaml's, local names) against a fake
Runtime API on loopback and the embedded AWS. POST /chat (a STREAM route) answers through a
streaming response; GET /sessions (a buffered one) through a buffered response, from one process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from local import aws_calls
from local.embedded import EmbeddedAws
from local.gateway import sandbox
from local.gateway.api import load_api, shared_env
from local.gateway.core import LOCAL_FUNCTION_ENV
from local.gateway.intrinsics import LocalNames
from tenantry import caches, streaming, tenancy
from tenantry.models.tenants import CreateTenantRequest
from tests.conftest import REPO_ROOT, api_event, tenant_context
from tests.fakes.lambda_runtime_api import FakeRuntimeApi, fake_runtime_api
from tests.unit.test_chat_stream import parse_sse
from tests.unit.test_streaming_runtime import lambda_like_layout, start_runtime


@pytest.fixture
def chat_runtime(
    embedded: EmbeddedAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeRuntimeApi]:
    model = load_api(names=LocalNames(api_id=embedded.api_id))
    for name, value in shared_env(model).items():  # this process onboards the tenant
        monkeypatch.setenv(name, value)
    caches.clear_all()
    spec = model.functions["ChatFunction"]
    env = {**sandbox.lambda_env(spec, LOCAL_FUNCTION_ENV), **embedded.process_env()}
    env.pop("ANTHROPIC_API_KEY", None)  # the offline echo model answers
    with aws_calls.acting_as("TenantsFunction"):
        tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="pro", tenant_id="acme"))
    wrapper, _ = lambda_like_layout(tmp_path, "")
    with fake_runtime_api() as api:
        process = start_runtime(
            api,
            wrapper,
            REPO_ROOT / "functions" / "chat",
            **{name: value for name, value in env.items() if not name.startswith("AWS_LAMBDA_EXEC")},
        )
        try:
            yield api
        finally:
            process.kill()
            out, _ = process.communicate()
            assert process.returncode is not None, out


def test_the_chat_function_streams_a_turn_and_answers_its_sessions_through_the_runtime_api(
    chat_runtime: FakeRuntimeApi,
) -> None:
    # When API Gateway would invoke POST /chat (InvokeWithResponseStream) with a streamed turn
    alice = {"X-User-ID": "alice"}
    turn = chat_runtime.invoke(
        api_event("POST", "/chat", body={"message": "through lambda", "stream": True},
                  authorizer=tenant_context("acme", "pro"), headers=alice),
    )  # fmt: skip
    # Then the runtime streamed the HTTP integration answer: prelude, delimiter, the events
    assert turn.mode == "streamed", turn.body
    assert turn.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    metadata, _, body = turn.streamed_bytes.partition(streaming.DELIMITER)
    prelude = json.loads(metadata)
    assert prelude["statusCode"] == 200
    assert prelude["multiValueHeaders"]["Content-Type"] == ["text/event-stream"]
    events = parse_sse(body)
    assert events[0][0] == "start" and events[-1][0] == "done"
    assert "".join(data["text"] for name, data in events if name == "delta") == "echo: through lambda"
    assert len(turn.chunks) > 3  # the prelude and each event were their own writes
    # And GET /sessions (a buffered route of the same function) is a buffered answer with the turn
    sessions = chat_runtime.invoke(
        api_event("GET", "/sessions", authorizer=tenant_context("acme", "pro"), headers=alice)
    )
    assert sessions.mode == "buffered"
    answer = json.loads(sessions.body)
    assert answer["statusCode"] == 200
    assert [session["session_id"] for session in json.loads(answer["body"])["sessions"]] == [
        events[0][1]["session_id"]
    ]
