"""The local gateway enforces Lambda's and API Gateway's limits: the function's own Timeout, the
integration timeout (29 s, configurable) and the 6 MB synchronous response payload."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from local import template
from local.stack_process import LocalStack
from tests.fakes.anthropic_server import Reply, fake_anthropic
from tests.integration.conftest import gateway_error

pytestmark = pytest.mark.local_only("starts its own stack or uses the overlay's test functions")


def test_a_function_past_its_timeout_is_502(gateway: LocalStack) -> None:
    # Given a function whose Timeout is 2 s / When it would take 3 s
    answer = gateway.request("GET", "/_test/slow/3")
    # Then Lambda ends it and API Gateway answers its 502
    assert answer.status == 502
    assert answer.json == gateway_error(answer, "Internal server error", "server_error")


def test_waiting_for_a_free_sandbox_is_not_counted_against_the_functions_timeout(
    gateway: LocalStack,
) -> None:
    # Given a function whose Timeout is 2 s and a local pool of 8 sandboxes (Lambda would scale out)
    # When 12 clients call it at once, each run taking 1.25 s, so 4 of them first wait about as long
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: gateway.request("GET", "/_test/slow/1.25").status, range(12)))
    # Then every run is within its Timeout: none is failed for the time spent queued or cold-starting
    assert statuses == [200] * 12, statuses


def test_a_response_over_six_megabytes_is_502_and_one_under_passes(gateway: LocalStack) -> None:
    # When a function answers 6.5 MB, then 5 MB
    too_large = gateway.request("GET", "/_test/large/6.5")
    fits = gateway.request("GET", "/_test/large/5")
    # Then the first exceeds Lambda's synchronous payload limit: 502; the second is delivered
    assert too_large.status == 502
    assert too_large.json == gateway_error(too_large, "Internal server error", "server_error")
    assert fits.status == 200
    assert len(fits.raw) == 5 * 1024 * 1024


def test_the_integration_timeout_is_504_with_api_gateways_body(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given a gateway whose integration timeout is 1 s (the function's own Timeout is 2 s)
    stack = stack_factory(tmp_path / "home", extra_args=["--integration-timeout", "1"])
    # When the function takes 1.5 s
    answer = stack.request("GET", "/_test/slow/1.5")
    # Then API Gateway's 504, rendered by the template's INTEGRATION_TIMEOUT response
    assert answer.status == 504
    assert answer.json == gateway_error(answer, "Endpoint request timed out", "integration_timeout")


def test_a_hanging_model_is_chats_504_within_the_integration_timeout_with_nothing_stored(
    stack_factory: Callable[..., LocalStack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a model endpoint that never answers in time and an integration timeout of 6 s
    with fake_anthropic() as model:
        model.default = Reply(delay_seconds=60)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", model.url)
        stack = stack_factory(tmp_path / "home", extra_args=["--integration-timeout", "6"])
        _, key = stack.create_tenant("pro")
        # (a first turn, answered, warms the function: its cold start counts against API
        # Gateway's clock, not the handler's, on AWS as here)
        # (on a loaded machine the cold start alone can pass the 6 s: the warm-up is tried again)
        for _ in range(5):
            model.script.append(Reply())
            warm = stack.request(
                "POST", "/chat", key=key, body={"message": "warm"}, headers={"X-User-ID": "u0"}
            )
            if warm.status == 200:
                break
        assert warm.status == 200
        # When a user chats
        answer = stack.request("POST", "/chat", key=key, body={"message": "hi"}, headers={"X-User-ID": "u1"})
        # Then chat itself answers 504 model_timeout before the gateway's own 504, and stored nothing
        assert answer.status == 504
        assert answer.json["error"] == "model_timeout"
        assert answer.headers["retry-after"] == "1"
        assert len(model.requests) == 2
        sessions = stack.request("GET", "/sessions", key=key, headers={"X-User-ID": "u1"})
        assert sessions.json["sessions"] == []
        conversations = template.local_table_name("ConversationsTable")
        stored = stack.aws_client("dynamodb").scan(TableName=conversations)["Items"]
        assert stored and all(str(item["sk"]["S"]).startswith("u0#") for item in stored)
