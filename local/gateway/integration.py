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
import time
from typing import TYPE_CHECKING, Any

from local.gateway import sandbox
from local.gateway.exchange import Exchange, gateway_answer
from local.gateway.responses import HANDLER_FAILURE, INTEGRATION_TIMEOUT, INVOKE_REFUSED
from local.gateway.server import HttpResponse

if TYPE_CHECKING:
    from local.gateway.api import ApiModel, Route

_log = logging.getLogger("tenantry.local.gateway")

# API Gateway's integration timeout where the template sets none.
DEFAULT_INTEGRATION_TIMEOUT = 29.0
# Lambda's limit on a synchronous invocation's response payload (the proxy result as JSON).
MAX_SYNC_RESPONSE_BYTES = 6 * 1024 * 1024
# JSON writes one character of a string as at most 12 bytes (a surrogate pair of \\u escapes).
_MAX_JSON_BYTES_PER_CHAR = 12


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
        # What the route's integration request parameter maps to X-Amz-Tenant-Id (an authorizer
        # context value): Lambda's tenant id. A tenant-isolated function without one is refused.
        tenant_id = None
        if route.tenant_id_from is not None and exchange.authorizer is not None:
            tenant_id = exchange.authorizer.context.get(route.tenant_id_from)
        integration_timeout = (
            self.integration_timeout or route.integration_timeout or DEFAULT_INTEGRATION_TIMEOUT
        )
        try:
            result = pool.invoke(event, exchange.request_id, tenant_id, patience_s=integration_timeout)
        except sandbox.IntegrationTimeoutError:
            _log.warning("%s passed the integration timeout (%.1f s)", route.function, integration_timeout)
            return gateway_answer(INTEGRATION_TIMEOUT, exchange, model)
        except sandbox.TenantIdRequiredError as error:
            # Lambda's Invoke refuses the call; API Gateway answers a configuration error.
            _log.error("%s %s: %s", exchange.method, exchange.path, error)
            return gateway_answer(INVOKE_REFUSED, exchange, model)
        except sandbox.FunctionError as error:
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
        finally:
            exchange.integration_ms = int((time.perf_counter() - started) * 1000)
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
