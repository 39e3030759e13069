"""The Lambda runtime loop of functions whose routes stream (``python -m tenantry.streaming_runtime``).

Lambda's Python runtime cannot stream a response, so such a function (template.yaml sets its
``AWS_LAMBDA_EXEC_WRAPPER`` to the layer's ``bin/tenantry-streaming-runtime``, which starts this on
the python3.13 runtime's own interpreter) runs this loop instead of the runtime interface client.
It speaks the Lambda Runtime API (``$AWS_LAMBDA_RUNTIME_API``, version 2018-06-01):

- init: import the handler (``$_HANDLER`` from ``$LAMBDA_TASK_ROOT``); a failure is posted to
  ``/runtime/init/error`` as ``Runtime.ImportModuleError`` and the process exits;
- each invocation: ``GET /runtime/invocation/next`` (the event, the request id, the deadline, the
  function ARN, the trace id and, in tenant isolation mode, ``Lambda-Runtime-Aws-Tenant-Id``), then
  the handler with a context like the Python runtime's, plus ``context.response_stream``;
- the answer, as the handler gives it: what it writes to ``response_stream`` goes out at once as a
  streaming response (``Lambda-Runtime-Function-Response-Mode: streaming``, chunked, one HTTP
  chunk per write), ended when the handler returns, or with Lambda's error trailers
  (``Lambda-Runtime-Function-Error-Type`` and ``-Body``) when it raises after writing; what it
  returns without writing is posted as a buffered response (JSON), and what it raises before
  writing to ``/error``. So one function serves its streamed routes and its buffered ones alike.

Standard library only, besides the handler's own imports.
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Final

API_VERSION: Final = "2018-06-01"
# The Content-Type of a streamed response that holds an HTTP integration answer (prelude,
# delimiter, body: tenantry.streaming).
HTTP_INTEGRATION_RESPONSE: Final = "application/vnd.awslambda.http-integration-response"
RESPONSE_MODE_HEADER: Final = "Lambda-Runtime-Function-Response-Mode"
ERROR_TYPE_TRAILER: Final = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER: Final = "Lambda-Runtime-Function-Error-Body"
ERROR_TYPE_HEADER: Final = "Lambda-Runtime-Function-Error-Type"


def error_of(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """Lambda's error object for ``exc``."""
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


@dataclass(frozen=True)
class Invocation:
    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str | None
    tenant_id: str | None
    client_context: str | None
    cognito_identity: str | None
    event: bytes


class RuntimeApi:
    """The Runtime API's endpoints, over plain HTTP on the address Lambda gives."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host or address, int(port or 80)
        self._next = self.connect()

    def connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(self.host, self.port)
        connection.connect()
        # Each write of a stream is its own small chunk: Nagle's algorithm would hold it back.
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _call(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        connection = self.connect()
        try:
            connection.request(method, f"/{API_VERSION}/runtime{path}", body=body, headers=headers)
            connection.getresponse().read()
        finally:
            connection.close()

    def next(self) -> Invocation:
        """Wait for the next invocation (Lambda freezes the environment meanwhile)."""
        self._next.request("GET", f"/{API_VERSION}/runtime/invocation/next")
        response = self._next.getresponse()
        event = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Invocation(
            request_id=headers["lambda-runtime-aws-request-id"],
            deadline_ms=int(headers.get("lambda-runtime-deadline-ms", "0")),
            function_arn=headers.get("lambda-runtime-invoked-function-arn", ""),
            trace_id=headers.get("lambda-runtime-trace-id"),
            tenant_id=headers.get("lambda-runtime-aws-tenant-id"),
            client_context=headers.get("lambda-runtime-client-context"),
            cognito_identity=headers.get("lambda-runtime-cognito-identity"),
            event=event,
        )

    def respond(self, request_id: str, payload: bytes) -> None:
        self._call(
            "POST", f"/invocation/{request_id}/response", payload, {"Content-Type": "application/json"}
        )

    def fail(self, request_id: str, error: dict[str, Any]) -> None:
        self._call(
            "POST",
            f"/invocation/{request_id}/error",
            json.dumps(error).encode(),
            {"Content-Type": "application/json", ERROR_TYPE_HEADER: str(error["errorType"])},
        )

    def init_failed(self, error: dict[str, Any]) -> None:
        self._call(
            "POST",
            "/init/error",
            json.dumps(error).encode(),
            {"Content-Type": "application/json", ERROR_TYPE_HEADER: str(error["errorType"])},
        )


class RuntimeResponseStream:
    """``context.response_stream``: the invocation's streaming response, opened at the first
    write, each write one chunk on the wire at once. ``write`` answers False once the Runtime API
    connection is gone (nothing more can reach the client)."""

    def __init__(self, api: RuntimeApi, request_id: str) -> None:
        self._api = api
        self._request_id = request_id
        self._connection: http.client.HTTPConnection | None = None
        self.gone = False

    @property
    def opened(self) -> bool:
        return self._connection is not None

    def _open(self) -> http.client.HTTPConnection:
        connection = self._api.connect()
        connection.putrequest("POST", f"/{API_VERSION}/runtime/invocation/{self._request_id}/response")
        connection.putheader(RESPONSE_MODE_HEADER, "streaming")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.putheader("Content-Type", HTTP_INTEGRATION_RESPONSE)
        connection.putheader("Trailer", f"{ERROR_TYPE_TRAILER}, {ERROR_BODY_TRAILER}")
        connection.endheaders()
        return connection

    def write(self, data: bytes) -> bool:
        if self.gone:
            return False
        try:
            if self._connection is None:
                self._connection = self._open()
            if data:
                self._connection.send(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError:
            self.gone = True
        return not self.gone

    def finish(self, error: dict[str, Any] | None = None) -> None:
        """The last chunk; with ``error``, Lambda's error trailers (the invocation failed)."""
        connection = self._connection
        if connection is None:
            return
        trailers = b""
        if error is not None:
            body = base64.b64encode(json.dumps(error).encode())
            trailers = f"{ERROR_TYPE_TRAILER}: {error['errorType']}\r\n".encode()
            trailers += ERROR_BODY_TRAILER.encode() + b": " + body + b"\r\n"
        try:
            connection.send(b"0\r\n" + trailers + b"\r\n")
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass  # the Runtime API ended the response already: nothing left to tell it
        finally:
            connection.close()


class LambdaContext:
    """The context the Python runtime passes a handler (the same attributes), and the stream."""

    def __init__(self, invocation: Invocation, response_stream: RuntimeResponseStream) -> None:
        self.aws_request_id = invocation.request_id
        self.invoked_function_arn = invocation.function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = json.loads(invocation.cognito_identity) if invocation.cognito_identity else None
        self.client_context = json.loads(invocation.client_context) if invocation.client_context else None
        self.tenant_id = invocation.tenant_id
        self.response_stream = response_stream
        self._deadline_ms = invocation.deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def load_handler(task_root: str, handler: str) -> Any:
    module_name, _, function_name = handler.rpartition(".")
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    module = importlib.import_module(module_name.replace("/", "."))
    return getattr(module, function_name)


def run_invocation(api: RuntimeApi, handler: Any, invocation: Invocation) -> None:
    """One invocation, answered streamed, buffered or as an error (see the module's docstring)."""
    if invocation.trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = invocation.trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    stream = RuntimeResponseStream(api, invocation.request_id)
    context = LambdaContext(invocation, stream)
    try:
        event = json.loads(invocation.event) if invocation.event else None
        result = handler(event, context)
    except Exception as exc:  # noqa: BLE001 - reported as Lambda reports a function error
        error = error_of(exc)
        print(json.dumps({"level": "ERROR", "message": "invocation failed", **error}), flush=True)
        if stream.opened:
            stream.finish(error)
        else:
            api.fail(invocation.request_id, error)
        return
    if stream.opened:
        stream.finish()
        return
    try:
        payload = json.dumps(result).encode()
    except (TypeError, ValueError) as exc:
        api.fail(invocation.request_id, error_of(exc, "Runtime.MarshalError"))
        return
    api.respond(invocation.request_id, payload)


def main() -> int:
    api = RuntimeApi(os.environ["AWS_LAMBDA_RUNTIME_API"])
    try:
        handler = load_handler(os.environ.get("LAMBDA_TASK_ROOT", "/var/task"), os.environ["_HANDLER"])
    except Exception as exc:  # noqa: BLE001 - Lambda's init failure
        api.init_failed(error_of(exc, "Runtime.ImportModuleError"))
        return 1
    while True:
        run_invocation(api, handler, api.next())


if __name__ == "__main__":
    sys.exit(main())
