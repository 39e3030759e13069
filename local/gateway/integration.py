"""The integration: invoking the route's function under Lambda's and API Gateway's limits, and
mapping its answer back to HTTP (API Gateway's integration and method response).

Kept apart from the request checks before it because it is where the clocks and limits of two
services meet: the function's own ``Timeout`` (Lambda ends it: 502), the integration timeout
(API Gateway stops waiting: 504), Lambda's 6 MB synchronous payload (502), a refused invoke (500)
and a malformed proxy answer (502). A CORS preflight's MOCK integration, which invokes nothing,
is answered here too.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from local.gateway import sandbox
from local.gateway.exchange import Exchange, gateway_answer
from local.gateway.responses import HANDLER_FAILURE, INTEGRATION_TIMEOUT, INVOKE_REFUSED
from local.gateway.server import HttpResponse, ResponseStream

if TYPE_CHECKING:
    from local.gateway.api import ApiModel, Route

_log = logging.getLogger("tenantry.local.gateway")

# API Gateway's integration timeout where the template sets none.
DEFAULT_INTEGRATION_TIMEOUT = 29.0
# Lambda's limit on a synchronous invocation's response payload (the proxy result as JSON).
MAX_SYNC_RESPONSE_BYTES = 6 * 1024 * 1024
# JSON writes one character of a string as at most 12 bytes (a surrogate pair of \\u escapes).
_MAX_JSON_BYTES_PER_CHAR = 12
# A streamed answer (responseTransferMode STREAM): the prelude, its delimiter, and the limit API
# Gateway reads them within (tenantry.streaming writes them).
STREAM_DELIMITER = b"\x00" * 8
MAX_PRELUDE_BYTES = 16 * 1024
# API Gateway ends a stream that sent nothing for this long: 5 minutes on regional (and private)
# endpoints, 30 s on edge-optimized ones.
STREAM_IDLE_SECONDS = {"REGIONAL": 300.0, "PRIVATE": 300.0, "EDGE": 30.0}


class LambdaProxyIntegration:
    """Invokes functions for the gateway's requests, on the request's own thread: the sandbox pool
    stops waiting at the integration timeout and lets the function run on."""

    def __init__(self, integration_timeout: float | None) -> None:
        self.integration_timeout = integration_timeout

    def invoke(
        self,
        route: Route,
        event: dict[str, Any],
        exchange: Exchange,
        *,
        pool: sandbox.FunctionPool,
        model: ApiModel,
    ) -> HttpResponse:
        """Invoke the route's function with Lambda's and API Gateway's limits: the function's own
        Timeout (then Lambda fails the invocation: 502), the integration timeout (504), and the
        6 MB synchronous response payload (502).

        The clocks start where AWS's do: the integration timeout once the invocation has a
        sandbox (its cold start counts; waiting for this pool's free sandbox does not, since Lambda
        scales out instead), the function's Timeout when its handler starts. Under a loaded machine
        a queue or a slow import must not turn into a 502 or 504 no deployed stack would give."""
        started = time.perf_counter()
        try:
            result = pool.invoke(
                event,
                exchange.request_id,
                self.tenant_id(route, exchange),
                patience_s=self.patience(route),
            )
        except (
            sandbox.IntegrationTimeoutError,
            sandbox.TenantIdRequiredError,
            sandbox.FunctionError,
        ) as error:
            return self.settle(route, exchange, model, started, None, error)
        return self.settle(route, exchange, model, started, result, None)

    def invoke_on_loop(  # noqa: PLR0917 - one request's parts, passed along the pipeline
        self,
        route: Route,
        event: dict[str, Any],
        exchange: Exchange,
        pool: sandbox.FunctionPool,
        model: ApiModel,
        loop: Any,
        done: Callable[[HttpResponse], None],
    ) -> bool:
        """:meth:`invoke` on the server's event loop, without a thread (a warm idle sandbox, a
        function without tenant isolation): ``done`` gets the answer on the loop. False, and
        nothing done, when the invocation needs a thread."""
        started = time.perf_counter()

        def answered(result: Any, error: BaseException | None) -> None:
            done(self.settle(route, exchange, model, started, result, error))

        return pool.invoke_on_loop(
            loop, event, exchange.request_id, answered, patience_s=self.patience(route)
        )

    def patience(self, route: Route) -> float:
        """How long API Gateway waits for the route's integration."""
        return self.integration_timeout or route.integration_timeout or DEFAULT_INTEGRATION_TIMEOUT

    @staticmethod
    def tenant_id(route: Route, exchange: Exchange) -> str | None:
        """What the route's integration request parameter maps to X-Amz-Tenant-Id (an authorizer
        context value): Lambda's tenant id. A tenant-isolated function without one is refused."""
        if route.tenant_id_from is not None and exchange.authorizer is not None:
            return exchange.authorizer.context.get(route.tenant_id_from)
        return None

    def settle(  # noqa: PLR0917 - an invocation's outcome, mapped
        self,
        route: Route,
        exchange: Exchange,
        model: ApiModel,
        started: float,
        result: Any,
        error: BaseException | None,
    ) -> HttpResponse:
        """An invocation's outcome (its result, or the error the pool raised) as API Gateway
        answers it."""
        exchange.integration_ms = int((time.perf_counter() - started) * 1000)
        if isinstance(error, sandbox.IntegrationTimeoutError):
            _log.warning("%s passed the integration timeout (%.1f s)", route.function, self.patience(route))
            return gateway_answer(INTEGRATION_TIMEOUT, exchange, model)
        if isinstance(error, sandbox.TenantIdRequiredError):
            # Lambda's Invoke refuses the call; API Gateway answers a configuration error.
            _log.error("%s %s: %s", exchange.method, exchange.path, error)
            return gateway_answer(INVOKE_REFUSED, exchange, model)
        if isinstance(error, sandbox.FunctionError):
            _log.error(
                "%s failed on %s %s: %s: %s\n%s",
                route.function,
                exchange.method,
                exchange.path,
                error.error_type,
                error.message,
                "".join(error.stack_trace),
            )
            return gateway_answer(HANDLER_FAILURE, exchange, model)
        if error is not None:
            raise error
        payload_bytes = _payload_bytes(result)
        if payload_bytes > MAX_SYNC_RESPONSE_BYTES:
            _log.error(
                "%s answered %d bytes; Lambda's synchronous limit is %d",
                route.function,
                payload_bytes,
                MAX_SYNC_RESPONSE_BYTES,
            )
            return gateway_answer(HANDLER_FAILURE, exchange, model)
        try:
            return map_result(result, exchange)
        except Exception:  # noqa: BLE001 - a malformed answer is API Gateway's 502
            _log.exception("%s answered malformed on %s %s", route.function, exchange.method, exchange.path)
            return gateway_answer(HANDLER_FAILURE, exchange, model)

    def invoke_streamed(
        self,
        route: Route,
        event: dict[str, Any],
        exchange: Exchange,
        *,
        pool: sandbox.FunctionPool,
        model: ApiModel,
        idle_seconds: float,
    ) -> HttpResponse:
        """A STREAM integration: InvokeWithResponseStream. The answer's status and headers come
        from the function's prelude; the body goes to the client piece by piece as the function
        writes it, from the invocation's thread, until the function ends (or the integration's
        timeout, or a silence of ``idle_seconds``, cuts it). Before the prelude, the limits and
        failures answer as a buffered integration's do."""
        started = time.perf_counter()
        tenant_id = self.tenant_id(route, exchange)
        integration_timeout = self.patience(route)
        relay = StreamRelay(exchange, idle_seconds=idle_seconds)
        relay.start_clock(integration_timeout)
        outcome: dict[str, Any] = {}

        def run() -> None:
            # The function's Timeout bounds the invocation; the integration timeout bounds the
            # stream (the relay cuts it), not the function.
            try:
                outcome["result"] = pool.invoke(event, exchange.request_id, tenant_id, receiver=relay)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request or logged
                outcome["error"] = exc
            finally:
                relay.function_ended(outcome.get("error"), outcome.get("result"), route.function)

        # The invocation outlives this request's thread, which returns once the prelude is here.
        threading.Thread(target=run, name="stream-invoke", daemon=True).start()
        relay.ready.wait(integration_timeout)
        exchange.integration_ms = int((time.perf_counter() - started) * 1000)
        answer = relay.answer()
        if answer is not None:
            return answer
        relay.give_up()
        if not relay.ready.is_set():
            _log.warning("%s sent no prelude within the integration timeout", route.function)
            return gateway_answer(INTEGRATION_TIMEOUT, exchange, model)
        error = outcome.get("error")
        if isinstance(error, sandbox.TenantIdRequiredError):
            _log.error("%s %s: %s", exchange.method, exchange.path, error)
            return gateway_answer(INVOKE_REFUSED, exchange, model)
        if error is not None:
            _log.error("%s failed on %s %s: %s", route.function, exchange.method, exchange.path, error)
        else:
            # A buffered answer, or bytes without a prelude: API Gateway finds no metadata (502).
            _log.error(
                "%s answered a STREAM integration without the prelude: %s", route.function, relay.problem
            )
        return gateway_answer(HANDLER_FAILURE, exchange, model)


class StreamRelay:
    """A streamed invocation's output on its way to the client (sandbox.StreamReceiver): the
    prelude read first, then each piece written to the server's :class:`ResponseStream` as it
    comes. Cuts the stream at the integration's timeout or a long silence, as API Gateway does;
    once the client is gone it tells the function (its next write answers False)."""

    def __init__(self, exchange: Exchange, *, idle_seconds: float) -> None:
        self._exchange = exchange
        self._idle_seconds = idle_seconds
        self._head = bytearray()
        self._lock = threading.Lock()
        self._response: HttpResponse | None = None
        self._stream: ResponseStream | None = None
        self._deadline = float("inf")
        self._last = time.monotonic()
        self._abandoned = False
        self.problem = "no output"
        self.ready = threading.Event()
        self.function_done_at: float | None = None

    def start_clock(self, integration_timeout: float) -> None:
        self._deadline = time.monotonic() + integration_timeout

    # ------------------------------------------------------------------ sandbox.StreamReceiver
    def chunk(self, data: bytes) -> bool:
        with self._lock:
            if self._abandoned:
                return False
            if self._stream is None:
                return self._read_prelude(data)
            stream = self._stream
        self._last = time.monotonic()
        return stream.write(data)

    def tick(self) -> bool:
        with self._lock:
            stream = self._stream
            if stream is None:
                return not self._abandoned
        now = time.monotonic()
        if not stream.finished.is_set() and (now >= self._deadline or now - self._last >= self._idle_seconds):
            why = "integration timeout" if now >= self._deadline else "idle timeout"
            _log.warning("streamed answer to %s cut (%s)", self._exchange.path, why)
            stream.abort()
        return not stream.finished.is_set()

    # ------------------------------------------------------------------ the prelude
    def _read_prelude(self, data: bytes) -> bool:
        self._head += data
        end = self._head.find(STREAM_DELIMITER)
        if end < 0:
            if len(self._head) > MAX_PRELUDE_BYTES:
                self.problem = f"no prelude and delimiter in the first {MAX_PRELUDE_BYTES} bytes"
                self.ready.set()
                return False
            return True
        try:
            prelude = json.loads(bytes(self._head[:end]))
            response = map_result({**prelude, "body": None}, self._exchange)
        except Exception as exc:  # noqa: BLE001 - a malformed prelude is API Gateway's 502
            self.problem = f"malformed prelude: {exc}"
            self.ready.set()
            return False
        rest = bytes(self._head[end + len(STREAM_DELIMITER) :])
        stream = ResponseStream()
        response.body = stream
        self._response, self._stream = response, stream
        self._last = time.monotonic()
        self.ready.set()
        return stream.write(rest) if rest else True

    def answer(self) -> HttpResponse | None:
        """The streamed answer to send, once its prelude came (None: there is none to send)."""
        with self._lock:
            return self._response

    def give_up(self) -> None:
        """No answer will be sent (the request already answered otherwise): drop what comes."""
        with self._lock:
            self._abandoned = True

    def function_ended(self, error: BaseException | None, result: Any, function: str) -> None:
        """The invocation ended: the stream ends with it (cut off when the function failed)."""
        self.function_done_at = time.monotonic()
        if self._stream is None:
            if error is None and not isinstance(result, sandbox.Streamed):
                self.problem = "a buffered answer"
            self.ready.set()
            return
        if error is not None:
            _log.error("%s failed mid-stream on %s: %s", function, self._exchange.path, error)
            self._stream.abort()
        else:
            self._stream.end()


def preflight(route: Route, exchange: Exchange) -> HttpResponse:
    """API Gateway's MOCK answer to a CORS preflight: the template's static headers, whatever
    the request's Origin (a browser compares it with Access-Control-Allow-Origin)."""
    headers = [("Content-Type", "application/json"), *(route.preflight or ())]
    return HttpResponse(200, [*headers, ("x-amzn-RequestId", exchange.request_id)], b"{}")


def map_result(result: Any, exchange: Exchange) -> HttpResponse:
    """A Lambda proxy answer → HTTP; anything malformed is the 502 API Gateway gives."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int | str):
        raise TypeError("the handler's answer has no statusCode")
    status = int(result["statusCode"])
    if not 100 <= status <= 599:
        raise ValueError(f"the handler answered status {status}")
    headers: list[tuple[str, str]] = []
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise TypeError("the handler's headers are not objects")
    for name, values in multi.items():
        headers.extend((str(name), str(value)) for value in values)
    lower_multi = {str(name).lower() for name in multi}
    headers.extend(
        (str(name), str(value)) for name, value in single.items() if name.lower() not in lower_multi
    )
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    headers.append(("x-amzn-RequestId", exchange.request_id))
    body = result.get("body")
    if body is None:
        payload = b""
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(str(body), validate=True)
        except binascii.Error as exc:
            raise ValueError("isBase64Encoded with a body that is not base64") from exc
    else:
        payload = str(body).encode()
    return HttpResponse(status, headers, payload)


def _payload_bytes(result: Any) -> int:
    """The size Lambda checks against its 6 MB limit: the answer as JSON. Serializing a whole
    answer again only to measure it cost ~3 % of a request, so an answer whose body is too short
    to reach the limit even when every character is escaped, and whose other fields are small,
    counts as its bound; 0 when the answer is not JSON (map_result refuses it)."""
    if isinstance(result, dict):
        body = result.get("body")
        rest = {name: value for name, value in result.items() if name != "body"}
        if body is None or isinstance(body, str):
            try:
                rest_bytes = len(json.dumps(rest, separators=(",", ":")).encode())
            except (TypeError, ValueError):
                return 0
            bound = rest_bytes + len(body or "") * _MAX_JSON_BYTES_PER_CHAR + len(',"body":""')
            if bound <= MAX_SYNC_RESPONSE_BYTES:
                return bound
    try:
        return len(json.dumps(result, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        return 0
