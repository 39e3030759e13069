"""Chat through the chat function: the real anthropic client against a fake Messages API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from tenantry import aws as clients
from tenantry import caches, llm, tenancy
from tenantry.models.tenants import CreateTenantRequest, TenantConfig, UpdateTenantRequest
from tenantry.stores import usage as usage_store
from tests.conftest import (
    MONTH_END,
    REPO_ROOT,
    FakeLambdaContext,
    add_tokens,
)
from tests.fakes.anthropic_server import FakeAnthropic, Reply
from tests.unit.conftest import KEY_PARAMETER, ChatApi, month_tokens


def configure(tenant_id: str, **config: Any) -> None:
    tenancy.update_tenant(tenant_id, UpdateTenantRequest(config=TenantConfig(**config)), None)


# ---------------------------------------------------------------------------------- turns


def test_echo_answers_offline_when_no_key_is_configured(api: ChatApi) -> None:
    # Given no Anthropic key anywhere / When a user says something
    status, answer, _ = api.say("hello there")
    # Then the echo provider answers, names itself, and counts tokens by its fixed rule
    assert status == 200
    assert answer["response"] == "echo: hello there"
    assert answer["model"] == "echo-1"
    assert answer["tokens"] == {
        "input": llm.echo_tokens("hello there"),
        "output": llm.echo_tokens("echo: hello there"),
    }
    assert answer["session_id"].startswith("s")


def test_anthropic_answers_with_the_key_from_ssm(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    status, answer, _ = api.say("hi")
    assert status == 200
    assert answer == {
        "response": "fake reply to: hi",
        "session_id": answer["session_id"],
        "model": "claude-haiku-4-5",
        "tokens": {"input": 11, "output": 7},
    }
    request = model.requests[-1]
    assert request["path"] == "/v1/messages"
    sent_key = request["headers"].get("x-api-key") or request["headers"].get("authorization", "")
    assert sent_key.endswith("sk-ant-test-key")
    assert request["body"]["max_tokens"] == 1024
    # And the tokens were metered into the month's and the day's usage with the turn
    assert month_tokens("acme", fixed_clock) == (11, 7)
    day = usage_store.DYNAMODB.get_period("acme", usage_store.day_period(fixed_clock))
    assert (day.get("tokens_in"), day.get("tokens_out")) == (11, 7)


def test_a_session_continues_and_keeps_its_messages_in_order(api: ChatApi, model: FakeAnthropic) -> None:
    _, first, _ = api.say("one")
    session_id = first["session_id"]
    status, second, _ = api.say("two", session_id)
    assert status == 200
    assert second["session_id"] == session_id
    # The model saw the earlier turn
    assert [m["content"] for m in model.last["messages"]] == ["one", "fake reply to: one", "two"]
    _, detail = api.session(session_id)
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [
        ("user", "one"),
        ("assistant", "fake reply to: one"),
        ("user", "two"),
        ("assistant", "fake reply to: two"),
    ]
    assert detail["session"]["turns"] == 2
    assert detail["session"]["title"] == "one"


# ---------------------------------------------------------------------------------- upstream failures


@pytest.mark.parametrize(
    ("upstream", "status", "code"), [(429, 503, "upstream_busy"), (529, 503, "upstream_busy")]
)
@pytest.mark.usefixtures("fixed_clock")
def test_rate_limited_or_overloaded_model_is_503_with_retry_after(
    api: ChatApi, model: FakeAnthropic, upstream: int, status: int, code: str
) -> None:
    model.default = Reply(status=upstream, headers={"retry-after": "7"})
    answer_status, answer, headers = api.say("hi")
    assert answer_status == status
    assert answer["error"] == code
    assert headers["Retry-After"] == "7"
    # And nothing was stored or metered
    assert api.sessions()[1]["sessions"] == []
    assert month_tokens("acme", MONTH_END) == (0, 0)
    assert usage_store.DYNAMODB.get_period("acme", usage_store.day_period(MONTH_END)).counters == {}


def test_model_server_error_is_502(api: ChatApi, model: FakeAnthropic) -> None:
    model.default = Reply(status=500)
    status, answer, _ = api.say("hi")
    assert status == 502
    assert answer["error"] == "upstream_error"


def test_model_timeout_is_504_model_timeout(
    api: ChatApi, model: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a model slower than the configured per-call timeout
    monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "0.3")
    caches.clear_all("tenantry.llm.")
    model.default = Reply(delay_seconds=1.5)
    # When a user chats
    status, answer, headers = api.say("hi")
    # Then the answer is 504 model_timeout, to be retried, and no session was created
    assert status == 504
    assert answer["error"] == "model_timeout"
    assert headers["Retry-After"] == "1"
    assert api.sessions()[1]["sessions"] == []


def test_the_sdk_retries_an_overloaded_model(
    api: ChatApi, model: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "2")
    caches.clear_all("tenantry.llm.")
    model.script = [Reply(status=529, headers={"retry-after-ms": "10"})]
    status, _, _ = api.say("hi")
    assert status == 200
    assert len(model.requests) == 2


def test_a_failed_turn_leaves_the_session_unchanged(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    _, first, _ = api.say("one")
    model.default = Reply(status=500)
    assert api.say("two", first["session_id"])[0] == 502
    _, detail = api.session(first["session_id"])
    assert detail["session"]["turns"] == 1
    assert len(detail["messages"]) == 2
    assert month_tokens("acme", fixed_clock) == (11, 7)


# ---------------------------------------------------------------------------------- configuration


def test_memory_window_trims_what_is_sent(api: ChatApi, model: FakeAnthropic) -> None:
    # Given a tenant whose memory window is 3 messages, and a session with 3 turns
    configure("acme", max_messages=3)
    _, first, _ = api.say("m1")
    session_id = first["session_id"]
    api.say("m2", session_id)
    api.say("m3", session_id)
    # When the 4th message is sent
    api.say("m4", session_id)
    # Then the model got the last complete window that starts with a user message, and the new one
    sent = [m["content"] for m in model.last["messages"]]
    assert sent == ["m3", "fake reply to: m3", "m4"]
    assert model.last["messages"][0]["role"] == "user"


def test_system_prompt_reaches_the_model(api: ChatApi, model: FakeAnthropic) -> None:
    configure("acme", system_prompt="You are Acme's support agent.")
    api.say("hi")
    assert model.last["system"] == "You are Acme's support agent."


def test_model_override_is_refused_for_basic_and_used_for_enterprise(
    api: ChatApi, model: FakeAnthropic
) -> None:
    from tenantry.errors import Forbidden

    with pytest.raises(Forbidden) as refused:
        configure("acme", model="claude-opus-4-1")
    assert refused.value.status == 403
    assert refused.value.code == "model_choice_not_in_tier"
    configure("initech", model="claude-opus-4-1")
    status, answer, _ = api.say("hi", tenant="initech")
    assert status == 200
    assert model.last["model"] == "claude-opus-4-1"
    assert answer["model"] == "claude-opus-4-1"


# ---------------------------------------------------------------------------------- budgets


def test_spent_token_budget_is_429_without_calling_the_model(
    api: ChatApi, model: FakeAnthropic, fixed_clock: datetime
) -> None:
    # Given acme (basic, 100,000 tokens a month) has spent its month
    add_tokens("acme", usage_store.month_period(fixed_clock), 60_000, 40_000)
    # When a user chats
    status, answer, headers = api.say("hi")
    # Then 429 with a clear error and when to come back, and the model was not called
    assert status == 429
    assert answer["error"] == "token_budget_exceeded"
    assert headers["Retry-After"] == "1"  # the month ends a tenth of a second after the clock
    assert model.requests == []
    # And another tenant is unaffected
    assert api.say("hi", tenant="globex")[0] == 200


def test_just_under_the_budget_still_answers(api: ChatApi, fixed_clock: datetime) -> None:
    add_tokens("acme", usage_store.month_period(fixed_clock), 99_999, 0)
    assert api.say("hi")[0] == 200


# ---------------------------------------------------------------------------------- isolation


def test_sessions_are_per_user_and_per_tenant(api: ChatApi) -> None:
    # Given alice's session at acme
    _, alice, _ = api.say("secret plan")
    session_id = alice["session_id"]
    # Then bob at acme, and alice at globex (same user id, same session id), cannot use it
    for intruder in ({"user": "bob"}, {"tenant": "globex"}):
        assert api.say("let me in", session_id, **intruder)[0] == 404
        assert api.session(session_id, **intruder)[0] == 404
        assert api.session(session_id, "DELETE", **intruder)[0] == 404
        assert api.sessions(**intruder)[1]["sessions"] == []
    # And alice's session is intact
    _, detail = api.session(session_id)
    assert detail["messages"][0]["content"] == "secret plan"
    assert detail["session"]["turns"] == 1


def test_sessions_list_newest_first_and_page(api: ChatApi) -> None:
    ids = [api.say(f"topic {n}")[1]["session_id"] for n in range(3)]
    api.say("again", ids[0])  # the first becomes the most recent
    _, page = api.sessions(query={"limit": "2"})
    assert [s["session_id"] for s in page["sessions"]] == [ids[0], ids[2]]
    _, rest = api.sessions(query={"limit": "2", "next_token": page["next_token"]})
    assert [s["session_id"] for s in rest["sessions"]] == [ids[1]]


def test_another_tenants_page_token_is_refused(api: ChatApi) -> None:
    for n in range(3):
        api.say(f"topic {n}")
    token = api.sessions(query={"limit": "1"})[1]["next_token"]
    status, answer = api.sessions(tenant="globex", query={"next_token": token})
    assert status == 400
    assert answer["field"] == "next_token"


def test_delete_removes_the_session(api: ChatApi) -> None:
    session_id = api.say("bye")[1]["session_id"]
    api.say("again", session_id)
    status, answer = api.session(session_id, "DELETE")
    assert (status, answer) == (200, {"session_id": session_id, "items_deleted": 3})
    assert api.session(session_id)[0] == 404
    assert api.session(session_id, "DELETE")[0] == 404


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 32_001}, "message"),
        ({"message": 42}, "message"),
        ({}, "message"),
        ({"message": "hi", "session_id": "bad id!"}, "session_id"),
        ({"message": "hi", "extra": True}, "extra"),
    ],
)
def test_invalid_chat_bodies_are_422(api: ChatApi, body: dict[str, Any], field: str) -> None:
    status, answer, _ = api.call("POST", "/chat", body=body)
    assert status == 422
    assert answer["errors"][0]["field"] == field


@pytest.mark.parametrize("user", [None, "", "has space", "a#b", "x" * 129])
def test_missing_or_bad_user_id_is_422(api: ChatApi, user: str | None) -> None:
    status, answer, _ = api.say("hi", user=user)
    assert status == 422
    assert answer["errors"][0]["field"].lower() == "x-user-id"


def test_malformed_json_and_oversized_body(api: ChatApi) -> None:
    assert api.call("POST", "/chat", raw_body='{"message": ')[0] == 400
    status, answer, _ = api.call("POST", "/chat", raw_body=json.dumps({"message": "x" * (257 * 1024)}))
    assert status == 413
    assert answer["error"] == "payload_too_large"


def test_unknown_session_is_404(api: ChatApi) -> None:
    assert api.say("hi", "s0000000000000000000000")[0] == 404


# ---------------------------------------------------------------------------------- cost and lifecycle


def test_a_turn_costs_at_most_three_round_trips(
    api: ChatApi, model: FakeAnthropic, dynamodb_calls: list[str]
) -> None:
    session_id = api.say("one")[1]["session_id"]
    calls = dynamodb_calls
    calls.clear()
    api.say("two", session_id)
    assert calls == ["BatchGetItem", "Query", "TransactWriteItems"]
    calls.clear()
    api.say("new session")
    assert calls == ["BatchGetItem", "TransactWriteItems"]


def test_offboarding_purges_the_conversations(api: ChatApi, aws: dict[str, str]) -> None:
    session_id = api.say("remember me")[1]["session_id"]
    api.say("and this", session_id)
    api.say("hello", tenant="globex")
    result = tenancy.offboard_tenant("acme", None)
    assert result.items_deleted["ConversationsTable"] == 3
    remaining = clients.dynamodb_client().scan(TableName=aws["ConversationsTable"])["Items"]
    assert {item["tenant_id"]["S"] for item in remaining} == {"globex"}


@pytest.mark.parametrize(("sample", "status"), [("chat-turn", 200), ("session-read", 404)])
def test_sample_events_run_through_the_handler(api: ChatApi, sample: str, status: int) -> None:
    # Given the samples' own tenant (tenantry invoke creates it locally)
    tenancy.create_tenant(CreateTenantRequest(name="Sample tenant", tier="pro", tenant_id="sample"))
    payload = json.loads((REPO_ROOT / "events" / f"{sample}.json").read_text())
    response = api.handler(payload, api.context)
    assert response["statusCode"] == status, response["body"]


# ---------------------------------------------------------------------------------- SSM failures


def test_a_missing_key_parameter_means_echo(api: ChatApi, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the key parameter's name, but no such parameter in SSM
    monkeypatch.setenv("ANTHROPIC_API_KEY_PARAMETER", KEY_PARAMETER)  # granted, never put
    caches.clear_all("tenantry.llm.")
    # When a user chats / Then the echo provider answers
    status, answer, _ = api.say("hi")
    assert (status, answer["model"]) == (200, "echo-1")


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException", "InternalServerError"])
def test_an_unreadable_key_parameter_is_503_never_echo(  # noqa: PLR0917 - pytest fixtures
    api: ChatApi,
    model: FakeAnthropic,
    faults: Any,
    code: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the key parameter exists but SSM answers with an error
    injector = faults(f"ssm={code}")
    # When a user chats
    status, answer, headers = api.say("hi")
    # Then it is 503 with Retry-After, an ERROR log line and a metric; no echo, no session
    assert status == 503
    assert answer["error"] == "model_key_unavailable"
    assert headers["Retry-After"] == "5"
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert [getattr(record, "error_code", None) for record in errors] == [code]
    assert '"ModelKeyUnavailable"' in capsys.readouterr().out
    assert model.requests == []
    # When SSM recovers, the next request reads the parameter again and the model answers
    injector.spec = injector.spec.__class__()
    status, answer, _ = api.say("hi again")
    assert status == 200
    assert answer["response"] == "fake reply to: hi again"


# ---------------------------------------------------------------------------------- deadlines


class ShortContext(FakeLambdaContext):
    """A Lambda context with little time left."""

    def __init__(self, remaining_ms: int) -> None:
        super().__init__()
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_hanging_model_is_504_model_timeout_within_the_budget_with_nothing_stored(
    api: ChatApi, model: FakeAnthropic, faults: Any, monkeypatch: pytest.MonkeyPatch, fixed_clock: datetime
) -> None:
    # Given a model endpoint that hangs, the default 20 s timeout with 2 retries, and an invocation
    # with 6 s left (so the model gets about 3 s: too little for even one retry, and far from the
    # 1 s under which the model is not called at all, however slow a loaded machine is before it)
    faults("model-hang")
    monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "20")
    monkeypatch.setenv("LLM_MAX_RETRIES", "2")
    caches.clear_all("tenantry.llm.")
    api.context = ShortContext(6000)
    # When a user chats
    status, answer, headers = api.say("hi")
    # Then the model was asked once (the retries were sized away), the answer is 504 model_timeout,
    # and nothing was stored: no session, no tokens
    assert status == 504
    assert answer["error"] == "model_timeout"
    assert headers["Retry-After"] == "1"
    assert len(model.requests) == 1
    api.context = FakeLambdaContext()
    assert api.sessions()[1]["sessions"] == []
    assert month_tokens("acme", fixed_clock) == (0, 0)


def test_no_time_left_for_the_model_is_504_without_a_call(api: ChatApi, model: FakeAnthropic) -> None:
    api.context = ShortContext(3500)
    status, answer, _ = api.say("hi")
    assert (status, answer["error"]) == (504, "model_timeout")
    assert model.requests == []


def test_retries_are_sized_to_the_budget() -> None:
    provider = llm.AnthropicProvider("sk-ant-x", timeout=20, max_retries=2, max_tokens=10)
    assert provider.attempts_within(26) == (20, 0)
    assert provider.attempts_within(8) == (8, 0)
    assert provider.attempts_within(70) == (20, 2)
    assert provider.attempts_within(43) == (20, 1)
