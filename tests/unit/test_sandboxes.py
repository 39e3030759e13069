"""Sandboxes as Lambda runs them (local/gateway/sandbox.py, local/gateway/runtime.py): a process per
sandbox, with its function's env, its own log file, one invocation at a time, and Lambda's errors."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local import transport
from local.gateway.api import FunctionSpec
from local.gateway.sandbox import (
    FunctionError,
    FunctionPool,
    FunctionTimeoutError,
    IntegrationTimeoutError,
    PoolSettings,
)
from local.wire import json_error, ok_json, respond

HANDLER = """
import json, os, sys, time

STATE = []  # module state: it lives as long as the sandbox


def lambda_handler(event, context):
    if event.get("print"):
        print(event["print"])
        print("to stderr", file=sys.stderr)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError(event["fail"])
    if event.get("exit"):
        os._exit(3)
    if event.get("not_json"):
        return {"when": object()}
    STATE.append(event.get("n"))
    return {
        "pid": os.getpid(),
        "scoped": os.environ.get("SCOPED"),
        "shared": os.environ.get("SHARED"),
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
        "state": STATE,
        "n": event.get("n"),
    }
"""


def _spec(folder: Path, logical_id: str, env: dict[str, str], timeout_s: int = 3) -> FunctionSpec:
    code = folder / logical_id
    code.mkdir(parents=True, exist_ok=True)
    (code / "app.py").write_text(HANDLER, encoding="utf-8")
    return FunctionSpec(
        logical_id=logical_id,
        name=f"test-{logical_id}",
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:test-{logical_id}",
        code_dir=code,
        module_file=code / "app.py",
        handler_name="lambda_handler",
        memory_mb=128,
        timeout_s=timeout_s,
        env=env,
    )


@pytest.fixture
def pools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FunctionPool]]:
    """Pools of the test handler; ``SCOPED`` is a variable of the template's functions."""
    monkeypatch.setenv("SHARED", "process")
    monkeypatch.setenv("SCOPED", "process")
    made: list[FunctionPool] = []

    def make(logical_id: str, env: dict[str, str], **spec: Any) -> FunctionPool:
        settings = PoolSettings(
            local_env={},
            scoped_names=frozenset({"SCOPED"}),
            layer_dirs=(),
            max_size=2,
            log_folder=tmp_path / "logs",
        )
        pool = FunctionPool(_spec(tmp_path / "code", logical_id, env, **spec), settings)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


def test_each_function_sees_its_own_env_and_not_another_functions(pools: Callable[..., FunctionPool]) -> None:
    # Given two functions, one that sets SCOPED and one that does not, in one gateway process
    chat = pools("Chat", {"SCOPED": "chat"})
    health = pools("Health", {})
    # When each is invoked
    chat_answer = chat.invoke({"n": 1}, "r1")
    health_answer = health.invoke({"n": 1}, "r2")
    # Then each reads its own value, the process's shared one, and never another function's
    assert (chat_answer["scoped"], chat_answer["shared"]) == ("chat", "process")
    assert (health_answer["scoped"], health_answer["shared"]) == (None, "process")
    assert chat_answer["function"] == "test-Chat" and chat_answer["pid"] != health_answer["pid"]


def test_concurrent_invocations_each_get_a_sandbox_of_their_own(pools: Callable[..., FunctionPool]) -> None:
    # Given a function and two invocations at once, each holding its sandbox for a while
    echo = pools("Echo", {})
    answers: dict[int, Any] = {}

    def invoke(number: int) -> None:
        answers[number] = echo.invoke({"n": number, "sleep": 0.3}, f"r{number}")

    threads = [threading.Thread(target=invoke, args=(number,)) for number in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Then each answered its own event from its own process, whose module state is its own
    assert answers[1]["n"] == 1 and answers[2]["n"] == 2
    assert answers[1]["pid"] != answers[2]["pid"]
    assert answers[1]["state"] == [1] and answers[2]["state"] == [2]
    # And a warm sandbox keeps its state for the next invocation
    again = echo.invoke({"n": 3}, "r3")
    assert again["state"] in ([1, 3], [2, 3])


def test_output_goes_to_the_functions_own_log_file(
    pools: Callable[..., FunctionPool], tmp_path: Path
) -> None:
    # Given two functions that print
    first, second = pools("First", {}), pools("Second", {})
    # When each prints a line (and one to stderr)
    first.invoke({"print": "from first"}, "r1")
    second.invoke({"print": "from second"}, "r2")
    # Then each function's lines are in its own file, none in the other's
    first_log = (tmp_path / "logs" / "First.log").read_text(encoding="utf-8")
    second_log = (tmp_path / "logs" / "Second.log").read_text(encoding="utf-8")
    assert first_log.splitlines() == ["from first", "to stderr"]
    assert second_log.splitlines() == ["from second", "to stderr"]


def test_an_invocation_past_the_timeout_ends_its_sandbox(pools: Callable[..., FunctionPool]) -> None:
    # Given a function with a Timeout of 1 s, warm
    slow = pools("Slow", {}, timeout_s=1)
    before = slow.invoke({"n": 1}, "r1")
    assert 0 < before["remaining"] <= 1000
    # When an invocation runs past it
    with pytest.raises(FunctionTimeoutError):
        slow.invoke({"sleep": 5}, "r2")
    # Then Lambda's answer is a timeout, and the next invocation cold-starts a new sandbox
    after = slow.invoke({"n": 3}, "r3")
    assert after["pid"] != before["pid"] and after["state"] == [3]


@pytest.mark.parametrize(
    ("event", "error_type"),
    [
        ({"fail": "boom"}, "ValueError"),
        ({"not_json": True}, "Runtime.MarshalError"),
        ({"exit": True}, "Runtime.ExitError"),
    ],
)
def test_a_failed_invocation_is_lambdas_error_and_the_pool_recovers(
    pools: Callable[..., FunctionPool], event: dict[str, Any], error_type: str
) -> None:
    function = pools("Failing", {})
    with pytest.raises(FunctionError) as failed:
        function.invoke(event, "r1")
    assert failed.value.error_type == error_type
    assert function.invoke({"n": 2}, "r2")["n"] == 2


def test_a_handler_that_cannot_be_imported_is_an_import_error(pools: Callable[..., FunctionPool]) -> None:
    broken = pools("Broken", {})
    broken.spec.module_file.write_text("import not_a_module_anywhere\n", encoding="utf-8")
    with pytest.raises(FunctionError) as failed:
        broken.invoke({}, "r1")
    assert failed.value.error_type == "Runtime.ImportModuleError"
    assert "not_a_module_anywhere" in json.dumps(failed.value.message)


AWS_HANDLER = """
import boto3
from botocore.exceptions import ClientError

DYNAMODB = boto3.client("dynamodb")
AT_IMPORT = DYNAMODB.list_tables()["TableNames"]  # a cold start's call


def lambda_handler(event, context):
    try:
        DYNAMODB.describe_table(TableName=event["table"])
        code = None
    except ClientError as error:
        code = error.response["Error"]["Code"]
    return {"at_import": AT_IMPORT, "tables": DYNAMODB.list_tables()["TableNames"], "code": code}
"""


def test_a_sandboxs_aws_calls_reach_the_embedded_aws_of_the_gateway_process_without_http(
    pools: Callable[..., FunctionPool],
) -> None:
    # Given an in-process AWS registered for an endpoint where nothing listens (so HTTP would fail)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    seen: list[tuple[str, str]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).rpartition(".")[2]
        seen.append((operation, str(environ.get("HTTP_AUTHORIZATION", ""))[:40]))
        if operation == "DescribeTable":
            return respond(start_response, json_error("dynamodb", "ResourceNotFoundException", "no table"))
        return respond(start_response, ok_json({"TableNames": [f"table-{len(seen)}"]}))

    transport.register(endpoint, app)
    try:
        function = pools(
            "Aws",
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "sandbox-key",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        )
        function.spec.module_file.write_text(AWS_HANDLER, encoding="utf-8")
        # When the function calls DynamoDB at its cold start and in two invocations
        first = function.invoke({"table": "missing"}, "r1")
        second = function.invoke({"table": "missing"}, "r2")
    finally:
        transport.unregister(endpoint)
    # Then every call crossed the sandbox's channel to this process's app, signed with the
    # function's own credentials, and an AWS error reached the SDK as AWS's error
    assert first == {"at_import": ["table-1"], "tables": ["table-3"], "code": "ResourceNotFoundException"}
    assert second["tables"] == ["table-5"] and second["code"] == "ResourceNotFoundException"
    assert [operation for operation, _ in seen] == ["ListTables", *["DescribeTable", "ListTables"] * 2]
    assert all("Credential=sandbox-key/" in authorization for _, authorization in seen)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running on a thread of its own, as the gateway's server runs one."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


def _on_loop(
    loop: asyncio.AbstractEventLoop,
    pool: FunctionPool,
    event: dict[str, Any],
    patience_s: float | None = None,
) -> tuple[bool, Any, BaseException | None]:
    """Invoke ``pool`` from ``loop``'s thread, as the gateway does: (taken, result, error)."""
    outcome: dict[str, Any] = {}
    started, answered = threading.Event(), threading.Event()

    def done(result: Any, error: BaseException | None) -> None:
        outcome.update(result=result, error=error)
        answered.set()

    def start() -> None:
        outcome["taken"] = pool.invoke_on_loop(loop, event, "r-loop", done, patience_s=patience_s)
        started.set()

    loop.call_soon_threadsafe(start)
    assert started.wait(10)
    if outcome["taken"]:
        assert answered.wait(10)
    return bool(outcome["taken"]), outcome.get("result"), outcome.get("error")


async def _thread_ident() -> int:
    return threading.get_ident()


def test_an_invocation_on_the_event_loop_is_served_there_aws_calls_errors_and_clocks_included(
    pools: Callable[..., FunctionPool], loop: asyncio.AbstractEventLoop
) -> None:
    # Given an in-process AWS (where nothing listens over HTTP) and a function that calls it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    served_on: list[int] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        served_on.append(threading.get_ident())
        return respond(start_response, ok_json({"TableNames": ["on-the-loop"]}))

    transport.register(endpoint, app)
    try:
        function = pools(
            "LoopAws",
            {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
             "AWS_DEFAULT_REGION": "us-east-1"},
        )  # fmt: skip
        function.spec.module_file.write_text(AWS_HANDLER, encoding="utf-8")
        # When it is invoked from the loop before any sandbox is warm, then once one is
        cold = _on_loop(loop, function, {"table": "t"})
        function.invoke({"table": "t"}, "r-warm-up")  # a thread's invocation cold-starts one
        served_on.clear()
        warm = _on_loop(loop, function, {"table": "t"})
    finally:
        transport.unregister(endpoint)
    # Then the cold one is left to a thread, and the warm one's AWS calls were served on the
    # loop's thread while it waited, its answer handed back there
    assert cold == (False, None, None)
    taken, result, error = warm
    assert taken and error is None and result["tables"] == ["on-the-loop"]
    assert set(served_on) == {asyncio.run_coroutine_threadsafe(_thread_ident(), loop).result(5)}


def test_on_the_event_loop_a_failure_an_exit_a_timeout_and_the_callers_patience_answer_as_on_a_thread(
    pools: Callable[..., FunctionPool], loop: asyncio.AbstractEventLoop
) -> None:
    # Given a warm function with a 1 s Timeout
    function = pools("LoopClocks", {}, timeout_s=1)
    first = function.invoke({"n": 1}, "r0")
    # When it fails, runs past the caller's patience, runs past its Timeout, and exits
    failed = _on_loop(loop, function, {"fail": "boom"})
    impatient = _on_loop(loop, function, {"sleep": 0.5, "n": 2}, patience_s=0.1)
    time.sleep(0.8)  # the invocation the caller gave up on runs to its end, then frees its sandbox
    after = function.invoke({"n": 3}, "r3")
    timed_out = _on_loop(loop, function, {"sleep": 5})
    function.invoke({"n": 4}, "r4")  # the Timeout ended that sandbox: a new one cold-starts
    exited = _on_loop(loop, function, {"exit": True})
    # Then each answers as FunctionPool.invoke would
    assert isinstance(failed[2], FunctionError) and failed[2].message == "boom"
    assert isinstance(impatient[2], IntegrationTimeoutError)
    assert after["pid"] == first["pid"] and after["state"] == [1, 2, 3]  # the same sandbox, which ran on
    assert isinstance(timed_out[2], FunctionTimeoutError)
    assert exited[0] and isinstance(exited[2], FunctionError) and exited[2].error_type == "Runtime.ExitError"
    assert all(outcome[0] for outcome in (failed, impatient, timed_out))
