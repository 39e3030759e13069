"""The streaming functions' entry point, run the way Lambda runs it: the layer's exec wrapper
(``bin/tenantry-streaming-runtime``, from an /opt laid out as Lambda extracts the layer) started
with the managed runtime's command as its arguments, in a subprocess, against a fake Runtime API on
loopback. A small handler exercises each way an invocation can be answered."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenantry import streaming
from tests.conftest import REPO_ROOT
from tests.fakes.lambda_runtime_api import FakeRuntimeApi, fake_runtime_api

WRAPPER = REPO_ROOT / "layers" / "core" / "bin" / "tenantry-streaming-runtime"
# What Lambda's python3.13 runtime would have run: the wrapper gets it as its arguments.
MANAGED_RUNTIME_COMMAND = ["/var/runtime/bootstrap"]

HANDLER = """
import time
from tenantry import streaming

def lambda_handler(event, context):
    kind = event["kind"]
    if kind == "buffered":
        return {"statusCode": 200, "body": "whole", "tenant": context.tenant_id,
                "remaining_ms": context.get_remaining_time_in_millis(), "request": context.aws_request_id}
    if kind == "stream":
        stream = context.response_stream
        stream.write(streaming.prelude({"statusCode": 200, "headers": {"Content-Type": "text/plain"}}))
        for number in range(3):
            stream.write(f"piece {number}\\n".encode())
            time.sleep(0.3)
        return None
    if kind == "fail-before":
        raise ValueError("nothing written")
    if kind == "fail-after":
        context.response_stream.write(b"partial")
        raise RuntimeError("broke mid-stream")
    if kind == "unmarshallable":
        return {"value": {1, 2}}
    raise AssertionError(kind)
"""


def lambda_like_layout(root: Path, handler_source: str) -> tuple[Path, Path]:
    """/opt as Lambda extracts the layer (bin/, python/ holding tenantry), and /var/task."""
    opt = root / "opt"
    (opt / "bin").mkdir(parents=True)
    shutil.copy2(WRAPPER, opt / "bin" / WRAPPER.name)
    (opt / "python").mkdir()
    (opt / "python" / "tenantry").symlink_to(REPO_ROOT / "layers" / "core" / "tenantry")
    task = root / "task"
    task.mkdir()
    (task / "app.py").write_text(handler_source, encoding="utf-8")
    return opt / "bin" / WRAPPER.name, task


def start_runtime(
    api: FakeRuntimeApi, wrapper: Path, task: Path, handler: str = "app.lambda_handler", **env: str
) -> subprocess.Popen[bytes]:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("AWS_LAMBDA")},
        # The venv's interpreter stands for /var/lang/bin/python3 (first on Lambda's PATH).
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": str(task),
        "_HANDLER": handler,
        "AWS_LAMBDA_FUNCTION_NAME": "tenantry-ChatFunction",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_EXEC_WRAPPER": str(wrapper),
        **env,
    }
    environment.pop("PYTHONPATH", None)
    return subprocess.Popen(  # noqa: S603 - the layer's own wrapper
        [str(wrapper), *MANAGED_RUNTIME_COMMAND],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[FakeRuntimeApi]:
    wrapper, task = lambda_like_layout(tmp_path, HANDLER)
    with fake_runtime_api() as api:
        process = start_runtime(api, wrapper, task)
        try:
            yield api
        finally:
            process.kill()
            process.wait()


def test_a_handler_that_writes_streams_each_write_as_it_happens(runtime: FakeRuntimeApi) -> None:
    # When an invocation's handler writes a prelude, then three pieces 0.3 s apart
    answer = runtime.invoke({"kind": "stream"})
    # Then the runtime posted a streaming response of an HTTP integration answer
    assert answer.mode == "streamed"
    assert answer.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert answer.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    assert "lambda-runtime-function-error-type" in answer.headers["trailer"].lower()
    metadata, _, body = answer.streamed_bytes.partition(streaming.DELIMITER)
    assert json.loads(metadata)["statusCode"] == 200
    assert body == b"piece 0\npiece 1\npiece 2\n"
    # And each write reached the Runtime API when it was made, not at the end
    pieces = [at for at, data in answer.chunks if data.startswith(b"piece")]
    assert len(pieces) == 3
    assert pieces[1] - pieces[0] > 0.2 and pieces[2] - pieces[1] > 0.2
    assert not answer.trailers


def test_a_handler_that_returns_is_a_buffered_response_with_the_invocations_context(
    runtime: FakeRuntimeApi,
) -> None:
    answer = runtime.invoke({"kind": "buffered"}, tenant_id="acme")
    assert answer.mode == "buffered"
    result = json.loads(answer.body)
    assert result["body"] == "whole"
    # Lambda's tenant isolation mode names the tenant in the invocation: the context reports it
    assert result["tenant"] == "acme"
    assert result["request"] == answer.request_id
    assert 0 < result["remaining_ms"] <= 30_000


def test_a_failure_before_writing_is_an_invocation_error(runtime: FakeRuntimeApi) -> None:
    answer = runtime.invoke({"kind": "fail-before"})
    assert answer.mode == "error"
    assert answer.headers["lambda-runtime-function-error-type"] == "ValueError"
    assert json.loads(answer.body)["errorMessage"] == "nothing written"


def test_a_failure_after_writing_ends_the_stream_with_lambdas_error_trailers(runtime: FakeRuntimeApi) -> None:
    answer = runtime.invoke({"kind": "fail-after"})
    assert answer.mode == "streamed"
    assert answer.streamed_bytes == b"partial"
    assert answer.trailers["lambda-runtime-function-error-type"] == "RuntimeError"
    error = json.loads(base64.b64decode(answer.trailers["lambda-runtime-function-error-body"]))
    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "broke mid-stream"


def test_an_answer_that_is_not_json_is_a_marshal_error(runtime: FakeRuntimeApi) -> None:
    answer = runtime.invoke({"kind": "unmarshallable"})
    assert answer.mode == "error"
    assert json.loads(answer.body)["errorType"] == "Runtime.MarshalError"


def test_one_process_serves_invocation_after_invocation(runtime: FakeRuntimeApi) -> None:
    kinds = ["buffered", "stream", "fail-before", "buffered"]
    answers = [runtime.invoke({"kind": kind}) for kind in kinds]
    assert [answer.mode for answer in answers] == ["buffered", "streamed", "error", "buffered"]


def test_a_handler_that_cannot_be_imported_is_an_init_error(tmp_path: Path) -> None:
    wrapper, task = lambda_like_layout(tmp_path, HANDLER)
    with fake_runtime_api() as api:
        process = start_runtime(api, wrapper, task, handler="missing.lambda_handler")
        try:
            assert api.init_failed.wait(30)
            assert process.wait(timeout=30) != 0
        finally:
            process.kill()
    assert api.init_error is not None
    assert api.init_error["errorType"] == "Runtime.ImportModuleError"


def test_the_wrapper_is_executable_and_shipped_by_the_layer_build() -> None:
    assert os.access(WRAPPER, os.X_OK)
    makefile = (REPO_ROOT / "layers" / "core" / "Makefile").read_text(encoding="utf-8")
    assert "install -m 0755 bin/tenantry-streaming-runtime" in makefile
