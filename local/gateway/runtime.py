"""What runs inside a local sandbox process: Lambda's Python runtime, in short.

A sandbox is a process of its own, as a Lambda execution environment is: it gets the function's
environment (the process's own ``os.environ``, set once), its stdout and stderr (the function's
log file), imports the handler module from the function's code folder with the layer's packages on
the path (a cold start), then runs one invocation at a time, as the runtime interface does:

- the gateway sends ``{"event", "request_id", "deadline_ms", "tenant_id"}`` (JSON, one message);
- the sandbox answers ``{"result": …}`` or ``{"error": {"errorType", "errorMessage",
  "stackTrace"}}``, Lambda's error shape; a result that is not JSON is Lambda's
  ``Runtime.MarshalError``, an import that fails its ``Runtime.ImportModuleError``.
- A function that runs the layer's streaming runtime (its ``AWS_LAMBDA_EXEC_WRAPPER``) gets
  ``context.response_stream`` as tenantry.streaming_runtime gives it: each write is a message of
  its own at once (``\x01`` + the bytes), and once the handler wrote, the answer is
  ``{"streamed": true}`` (with ``"error"`` when it then raised: Lambda's error trailers). The
  gateway sends ``gone`` when the client left; the next write answers False.

The gateway starts sandboxes through :mod:`multiprocessing`'s fork server, which imports the
heavy third-party packages once (:data:`PRELOAD`); each sandbox forks from it and imports only the
function's own code and the layer, fresh, so hot reload needs nothing but a new sandbox.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

# Imported once by the fork server, before any sandbox forks: what every function imports and no
# function changes. The layer (tenantry) and the functions' own code are never preloaded.
PRELOAD = (
    "boto3",
    "botocore.session",
    "pydantic",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.idempotency",
    "anthropic",
    "local.gateway.preload",
)


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandbox needs to start: all plain values (it crosses into another process)."""

    logical_id: str
    function_name: str
    arn: str
    code_dir: str
    module: str
    handler: str
    memory_mb: int
    layer_dirs: tuple[str, ...]
    env: dict[str, str]
    log_path: str | None = None  # None: stdout and stderr as the gateway's
    stdout_to_stderr: bool = False  # tenantry invoke: results on stdout, logs on stderr
    record_calls_for: tuple[str, ...] = ()  # the IAM tier's logical ids, when it records
    streaming: bool = False  # the function runs the layer's streaming runtime
    # The embedded AWS's endpoint when the gateway serves it on the sandbox's AWS channel (a pipe
    # of its own); None: the function reaches it over HTTP (AWS_ENDPOINT_URL), as any process does.
    aws_endpoint: str | None = None


CHUNK = b"\x01"  # a message of the sandbox's that is a piece of a streamed answer
GONE = b"gone"  # the gateway's message: nobody reads the stream any more


class PipeResponseStream:
    """``context.response_stream`` in a sandbox: each write goes to the gateway at once."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.opened = False
        self.gone = False

    def _check_gone(self) -> None:
        while not self.gone and self._connection.poll():
            if self._connection.recv_bytes() == GONE:
                self.gone = True

    def write(self, data: bytes) -> bool:
        self._check_gone()
        if self.gone:
            return False
        self.opened = True
        if data:
            self._connection.send_bytes(CHUNK + bytes(data))
        self._check_gone()
        return not self.gone


class LambdaContext:
    """The context object the Python runtime passes to a handler (the same attributes)."""

    __slots__ = (
        "_deadline_ms",
        "aws_request_id",
        "client_context",
        "function_name",
        "function_version",
        "identity",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
        "response_stream",
        "tenant_id",
    )

    def __init__(self, spec: SandboxSpec, request_id: str, deadline_ms: int, log_stream: str) -> None:
        self.function_name = spec.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        # The real runtime reads this from AWS_LAMBDA_FUNCTION_MEMORY_SIZE: a string.
        self.memory_limit_in_mb = str(spec.memory_mb)
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.function_name}"
        self.log_stream_name = log_stream
        self.identity = None
        self.client_context = None
        self.tenant_id: str | None = None
        self.response_stream: PipeResponseStream | None = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_of(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _redirect_output(spec: SandboxSpec) -> None:
    if spec.log_path is not None:
        descriptor = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        os.close(descriptor)
    elif spec.stdout_to_stderr:
        os.dup2(2, 1)
    # Whole lines, each in one write: several sandboxes of a function append to one file.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def _load_handler(spec: SandboxSpec) -> Any:
    os.environ.clear()
    os.environ.update(spec.env)
    if spec.record_calls_for:
        from local import aws_calls  # noqa: PLC0415 - only when the IAM tier records

        aws_calls.install_from_env(set(spec.record_calls_for))
    sys.path[:0] = [spec.code_dir, *spec.layer_dirs]
    module = importlib.import_module(spec.module)
    return getattr(module, spec.handler)


def warm_up() -> None:
    """Nothing: a first process, so the fork server is up (and has preloaded) before it is needed."""


def serve(connection: Any, spec: SandboxSpec, aws_channel: Any = None) -> None:
    """The sandbox's main loop (a ``multiprocessing`` target): init, then invocations until the
    gateway closes the connection. With an ``aws_channel``, the function's AWS calls to the
    embedded AWS travel on it (``local/transport.py``) instead of HTTP."""
    _redirect_output(spec)
    if aws_channel is not None and spec.aws_endpoint:
        from local.transport import ChannelClient  # noqa: PLC0415 - only sandboxes of a gateway

        ChannelClient(aws_channel, spec.aws_endpoint).install()
    try:
        handler = _load_handler(spec)
    except Exception as exc:  # noqa: BLE001 - reported the way Lambda reports an init failure
        connection.send_bytes(json.dumps({"error": error_of(exc, "Runtime.ImportModuleError")}).encode())
        return
    log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{os.urandom(16).hex()}"
    connection.send_bytes(b'{"ready":true}')
    while True:
        try:
            message = connection.recv_bytes()
        except (EOFError, OSError):
            return  # the gateway retired this sandbox, or is gone
        if message == GONE:
            continue  # about a stream that has ended since
        request = json.loads(message)
        context = LambdaContext(spec, request["request_id"], int(request["deadline_ms"]), log_stream)
        context.tenant_id = request.get("tenant_id")
        stream = context.response_stream = PipeResponseStream(connection) if spec.streaming else None
        answer: dict[str, Any]
        try:
            result = handler(request["event"], context)
        except Exception as exc:  # noqa: BLE001 - an invocation error, as Lambda reports it
            answer = {"error": error_of(exc)}
            if stream is not None and stream.opened:
                answer["streamed"] = True
        else:
            answer = {"streamed": True} if stream is not None and stream.opened else {"result": result}
        try:
            payload = json.dumps(answer).encode()
        except (TypeError, ValueError) as exc:
            payload = json.dumps({"error": error_of(exc, "Runtime.MarshalError")}).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            connection.send_bytes(payload)
        except OSError:
            return
