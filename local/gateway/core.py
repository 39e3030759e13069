"""The local gateway: API Gateway's request pipeline in front of the real handlers, in process.

For each request, in API Gateway's order: match a route from template.yaml (else 403 "Missing
Authentication Token"), refuse a body over the payload limit (413), run the authorizer (cached
per identity for ``ReauthorizeEvery``, the policy re-checked against each method ARN), check the
API key from ``usageIdentifierKey`` against the usage plans (throttle, then quota), build a REST
proxy event (payload v1), invoke the handler in a sandbox, map its answer (502 when it crashes)
and write one access-log line in the template's format, which also feeds metering.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, unquote

from local import aws_calls, template
from local.embedded import ACCOUNT_ID, REGION, EmbeddedAws
from local.gateway import asyncinvoke, responses, sandbox
from local.gateway.accesslog import AccessLog
from local.gateway.api import ApiModel, FunctionSpec, Route, load_api, shared_env, template_files
from local.gateway.auth import (
    AuthorizerCache,
    AuthorizerFailedError,
    AuthorizerResult,
    UnauthorizedError,
    identity_values,
)
from local.gateway.intrinsics import LocalNames
from local.gateway.logfiles import FunctionLogs
from local.gateway.plans import UsagePlans, load_bindings
from local.gateway.responses import GatewayAnswer
from local.gateway.schedules import LocalScheduler
from local.gateway.server import HttpRequest, HttpResponse, HttpServer

_log = logging.getLogger("tenantry.local.gateway")

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit for REST APIs
LAYERS_DIR = template.REPO_ROOT / "layers"
OPENAPI_FILE = template.REPO_ROOT / "docs" / "openapi.json"
SWAGGER_ASSETS = ("swagger-ui-bundle.min.js", "swagger-ui.min.css")

# What a local handler sees on top of the template's env: no X-Ray daemon here.
INTEGRATION_TIMEOUT_SECONDS = 29.0
INTEGRATION_TIMEOUT_ENV = "INTEGRATION_TIMEOUT_SECONDS"  # read by tenantry.deadline
# Lambda's limit on a synchronous invocation's response payload (the proxy result as JSON).
MAX_SYNC_RESPONSE_BYTES = 6 * 1024 * 1024
LOCAL_FUNCTION_ENV = {"POWERTOOLS_TRACE_DISABLED": "true", "AWS_SAM_LOCAL": "true"}
SCHEDULE_GROUP_ENV = "SCHEDULE_GROUP"


@dataclass
class GatewayOptions:
    host: str = "127.0.0.1"
    port: int = 3000
    home: Path | None = None
    overlays: list[Path] = field(default_factory=list)
    authorizer_ttl: int | None = None  # None: the template's ReauthorizeEvery
    max_body_bytes: int = API_GATEWAY_MAX_BODY
    pool_size: int = 8
    hot_reload: bool = True
    access_log_echo: IO[str] | None = None
    metering: bool = True
    # API Gateway's integration timeout (29 s by default on AWS, configurable per integration).
    integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS
    # Template parameters' values in place of their defaults (tenantry dev --parameter).
    parameters: dict[str, str] = field(default_factory=dict)


UNAUTHORIZED = GatewayAnswer(401, "Unauthorized", "UNAUTHORIZED", "UnauthorizedException")
MISSING_TOKEN = GatewayAnswer(
    403, "Missing Authentication Token", "MISSING_AUTHENTICATION_TOKEN", "MissingAuthenticationTokenException"
)
EXPLICIT_DENY = GatewayAnswer(
    403,
    "User is not authorized to access this resource with an explicit deny",
    "ACCESS_DENIED",
    "AccessDeniedException",
    message_key="Message",
)
IMPLICIT_DENY = GatewayAnswer(
    403,
    "User is not authorized to access this resource",
    "ACCESS_DENIED",
    "AccessDeniedException",
    message_key="Message",
)
INVALID_API_KEY = GatewayAnswer(403, "Forbidden", "INVALID_API_KEY", "ForbiddenException")
THROTTLED = GatewayAnswer(429, "Too Many Requests", "THROTTLED", "TooManyRequestsException")
QUOTA_EXCEEDED = GatewayAnswer(429, "Limit Exceeded", "QUOTA_EXCEEDED", "LimitExceededException")
AUTHORIZER_FAILURE = GatewayAnswer(
    500, None, "AUTHORIZER_CONFIGURATION_ERROR", "AuthorizerConfigurationException"
)
HANDLER_FAILURE = GatewayAnswer(502, "Internal server error", "DEFAULT_5XX", "InternalServerErrorException")
TOO_LARGE = GatewayAnswer(413, "Request Too Long", "REQUEST_TOO_LARGE", "RequestTooLongException")
BAD_REQUEST = GatewayAnswer(400, "Bad Request", "BAD_REQUEST_BODY", "BadRequestException")
HEADERS_TOO_LARGE = GatewayAnswer(
    431, "Request Header Fields Too Large", "DEFAULT_4XX", "RequestHeaderFieldsTooLargeException"
)
INTEGRATION_TIMEOUT = GatewayAnswer(
    504, "Endpoint request timed out", "INTEGRATION_TIMEOUT", "InternalServerErrorException"
)
GATEWAY_BUG = GatewayAnswer(500, "Internal server error", "DEFAULT_5XX", "InternalServerErrorException")
# Lambda's Invoke API refused the call (here: a tenant-isolated function invoked without
# X-Amz-Tenant-Id); API Gateway logs "Execution failed due to configuration error" and answers 500.
INVOKE_REFUSED = GatewayAnswer(500, "Internal server error", "DEFAULT_5XX", "InternalServerErrorException")


@dataclass
class _Exchange:
    """What one request gathered on its way through, for the event and the access log."""

    request_id: str
    started: float
    epoch_ms: int
    method: str
    path: str
    route: Route | None = None
    authorizer: AuthorizerResult | None = None
    api_key: str | None = None
    api_key_id: str | None = None
    integration_ms: int | None = None
    error_type: str = ""


# JSON writes one character of a string as at most 12 bytes (a surrogate pair of \\u escapes).
_MAX_JSON_BYTES_PER_CHAR = 12


def _payload_bytes(result: Any) -> int:
    """The size Lambda checks against its 6 MB limit: the answer as JSON. Serializing a whole
    answer again only to measure it cost ~3 % of a request, so an answer whose body is too short
    to reach the limit even when every character is escaped, and whose other fields are small,
    counts as its bound; 0 when the answer is not JSON (_map_result refuses it)."""
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


class _Invokers:
    """Threads that run invocations, each taken when idle or started when none is."""

    def __init__(self) -> None:
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            jobs = self._idle.pop() if self._idle else None
        if jobs is None:
            jobs = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(jobs,), name="invoke", daemon=True).start()
        jobs.put(job)

    def _serve(self, jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            jobs.get()()
            with self._lock:
                self._idle.append(jobs)


def _decoded_path(raw_path: str) -> str:
    """Percent-decoded, except that an encoded slash never splits a segment and stays encoded:
    ``/events%2F1`` is one segment that matches no route (not event 1), and ``/events/1%2F2``
    hands the handler the parameter ``1%2F2``, which no pattern accepts."""
    return "/".join(unquote(segment).replace("/", "%2F") for segment in raw_path.split("/"))


def _identity_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Header values by lower-case name; a header sent more than once with different values
    keeps them all (comma-joined), so the authorizer cache never takes a request with two keys
    for the request with the last one. The authorizer sees every value in multiValueHeaders."""
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        values = merged.setdefault(name.lower(), [])
        if value not in values:
            values.append(value)
    return {name: ",".join(values) for name, values in merged.items()}


def _answer(answer: GatewayAnswer, exchange: _Exchange, model: ApiModel) -> HttpResponse:
    """API Gateway's own answer, rendered from the template's gateway responses."""
    exchange.error_type = answer.error_type
    status, headers, body = responses.render(model.gateway_responses, answer, exchange.request_id)
    return HttpResponse(
        status,
        [
            ("Content-Type", "application/json"),
            *headers,
            ("x-amzn-RequestId", exchange.request_id),
            ("x-amzn-ErrorType", answer.amzn_error_type),
        ],
        body,
    )


class Gateway:
    """Serves template.yaml's API on ``options.host``:``options.port`` against ``aws``."""

    def __init__(self, aws: EmbeddedAws, options: GatewayOptions) -> None:
        self.aws = aws
        self.options = options
        self.names = LocalNames(
            api_id=aws.api_id, region=REGION, account_id=ACCOUNT_ID, parameters=dict(options.parameters)
        )
        self.authorizer_cache = AuthorizerCache()
        apigateway = aws.client("apigateway")
        self.plans = UsagePlans(
            lambda: load_bindings(apigateway),
            state_file=options.home / "quota.json" if options.home is not None else None,
        )
        self._model_lock = threading.Lock()
        self.model: ApiModel = self._load_model()
        self._pools: dict[str, sandbox.FunctionPool] = {}
        self._watcher = sandbox.Watcher()
        self._server: HttpServer | None = None
        self._invokers = _Invokers()
        # Each function's stdout to $TENANTRY_HOME/logs/<LogicalId>.log, as CloudWatch keeps one
        # log group per function; without a home, stdout as it is.
        self.function_logs = FunctionLogs(options.home) if options.home is not None else None
        self.access_log = AccessLog(
            self.model.access_log_format,
            path=options.home / "access.log" if options.home is not None else None,
            echo=options.access_log_echo,
            deliver=self._deliver_access_log if options.metering else None,
        )
        self._queue_urls: dict[str, str] = {}
        aws.add_flush_listener(self._on_flush)
        aws.add_change_listener(self.plans.invalidate)
        self.scheduler = LocalScheduler(aws.client("scheduler"), self._schedule_groups(), self._invoke_by_arn)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> None:
        sandbox.install_layered_environ({name for spec in self.model.functions.values() for name in spec.env})
        sandbox.router_state_per_thread()
        # The IAM test tier records what each function calls (only when TENANTRY_AWS_CALLS is set).
        aws_calls.install_from_env(set(self.model.functions) | set(template.template().get("Resources", {})))
        self.aws.configure_process()
        if self.function_logs is not None:
            self.function_logs.install()
        self._rebuild_pools()
        self._server = HttpServer(
            self.handle,
            self.options.host,
            self.options.port,
            max_body=self.options.max_body_bytes,
            bad_request=lambda status: _answer(
                HEADERS_TOO_LARGE if status == 431 else BAD_REQUEST, self._new_exchange("", ""), self.model
            ),
        )
        self._server.start()
        self.access_log.start()
        self.scheduler.start()
        if self.options.hot_reload:
            self._watch()
            self._watcher.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._watcher.stop()
        self.scheduler.stop()
        self.access_log.stop()
        self.plans.save()
        if self.function_logs is not None:
            self.function_logs.uninstall()

    # ------------------------------------------------------------------ template and code
    def _load_model(self) -> ApiModel:
        return load_api(self.options.overlays, names=self.names, authorizer_ttl=self.options.authorizer_ttl)

    def _rebuild_pools(self) -> None:
        with self._model_lock:
            # Variables every function agrees on go into the real os.environ, for code that runs
            # outside a sandbox's env layer (the metering thread); each sandbox sees only its own.
            # The functions learn the integration timeout (tenantry.deadline caps budgets by it).
            local_env = {
                **LOCAL_FUNCTION_ENV,
                INTEGRATION_TIMEOUT_ENV: f"{self.options.integration_timeout:g}",
            }
            for name, value in {**shared_env(self.model), **local_env}.items():
                os.environ[name] = value
            layer_names = sandbox.top_level_names(LAYERS_DIR / "core")
            self._pools = {
                logical_id: sandbox.FunctionPool(
                    spec,
                    sandbox.lambda_env(spec, local_env),
                    layer_names,
                    self.options.pool_size,
                    log=self.function_logs.file_for(logical_id) if self.function_logs is not None else None,
                )
                for logical_id, spec in self.model.functions.items()
            }

    def _watch(self) -> None:
        self._watcher.clear()
        for path in template_files(self.options.overlays):
            self._watcher.watch(path, self._on_template_change)
        self._watcher.watch(LAYERS_DIR, self._on_layer_change)
        for spec in self.model.functions.values():
            self._watcher.watch(spec.code_dir, self._on_code_change)

    def _on_template_change(self, path: Path) -> None:
        model = self._load_model()
        self.model = model
        self._rebuild_pools()
        self.authorizer_cache.flush()
        _log.warning("%s changed: %d routes reloaded", path.name, len(model.routes))
        self._watch()

    def _on_layer_change(self, _: Path) -> None:
        for pool in list(self._pools.values()):
            pool.retire()
        _log.warning("layers changed: every function cold-starts on its next request")

    def _on_code_change(self, path: Path) -> None:
        for pool in list(self._pools.values()):
            if pool.spec.code_dir == path:
                pool.retire()
                _log.warning("%s changed: it cold-starts on its next request", pool.spec.logical_id)

    def _schedule_groups(self) -> list[str]:
        """The schedule groups the functions are told to use (their SCHEDULE_GROUP)."""
        return sorted(
            {
                spec.env[SCHEDULE_GROUP_ENV]
                for spec in self.model.functions.values()
                if spec.env.get(SCHEDULE_GROUP_ENV)
            }
        )

    def _invoke_by_arn(self, function_arn: str, payload: dict[str, Any]) -> Any:
        """An asynchronous invocation by a schedule: the function whose ARN it names."""
        pool = next((pool for pool in self._pools.values() if pool.spec.arn == function_arn), None)
        if pool is None:
            raise LookupError(f"no function {function_arn} in the template")
        return pool.invoke(payload, str(uuid.uuid4()))

    def _on_flush(self, api_id: str, stage: str) -> None:
        if api_id == self.names.api_id and stage == self.model.stage:
            flushed = self.authorizer_cache.flush()
            _log.info("authorizer cache flushed (%d entries)", flushed)

    def _deliver_access_log(self, event: dict[str, Any]) -> None:
        """CloudWatch Logs' subscription: invoke the subscribed function (metering) asynchronously,
        with Lambda's retries and on-failure destination (local/gateway/asyncinvoke.py)."""
        subscriber = self.model.access_log_subscriber
        pool = self._pools.get(subscriber) if subscriber is not None else None
        if pool is None:
            return
        asyncinvoke.invoke_async(pool, event, self._send_to_destination)

    def _send_to_destination(self, spec: FunctionSpec, arn: str, body: str) -> None:
        """Send an invocation record to an SQS destination with the function's role (Lambda's
        service uses the execution role: the IAM tier sees the function's sqs:SendMessage)."""
        url = self._queue_urls.get(arn)
        if url is None:
            answer = self.aws.client("sqs").get_queue_url(QueueName=arn.rsplit(":", 1)[-1])
            url = self._queue_urls[arn] = str(answer["QueueUrl"])
        with sandbox.function_env(sandbox.lambda_env(spec, LOCAL_FUNCTION_ENV)):
            self.aws.client("sqs").send_message(QueueUrl=url, MessageBody=body)

    # ------------------------------------------------------------------ the request pipeline
    def _new_exchange(self, method: str, path: str) -> _Exchange:
        now = time.time()
        return _Exchange(str(uuid.uuid4()), time.perf_counter(), int(now * 1000), method, path)

    def handle(self, request: HttpRequest) -> HttpResponse:
        raw_path, _, query_string = request.target.partition("?")
        exchange = self._new_exchange(request.method, _decoded_path(raw_path))
        try:
            response = self._pipeline(request, exchange, query_string)
        except Exception:  # noqa: BLE001 - a gateway bug is a 500, never a traceback to the client
            _log.exception("the local gateway failed on %s %s", request.method, raw_path)
            response = _answer(GATEWAY_BUG, exchange, self.model)
        if exchange.route is not None or exchange.error_type:
            self._log_access(exchange, response.status)
        return response

    def _pipeline(self, request: HttpRequest, exchange: _Exchange, query_string: str) -> HttpResponse:
        local = self._local_page(request.method, exchange.path)
        if local is not None:
            return local
        match = self.model.match(request.method, exchange.path)
        if match is None:
            return _answer(MISSING_TOKEN, exchange, self.model)
        route, path_params = match
        exchange.route = route
        if route.preflight is not None:
            return self._preflight(route, exchange)
        if request.body_too_large:
            return _answer(TOO_LARGE, exchange, self.model)
        headers = _identity_headers(request.headers)
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        if route.authorizer is not None:
            denial = self._authorize(route, request, exchange, headers, query, query_string, path_params)
            if denial is not None:
                return _answer(denial, exchange, self.model)
        if route.api_key_required:
            denial = self._check_usage_plan(exchange, headers)
            if denial is not None:
                return _answer(denial, exchange, self.model)
        event = self._proxy_event(request, exchange, query_string, path_params)
        return self._integrate(route, event, exchange)

    @staticmethod
    def _preflight(route: Route, exchange: _Exchange) -> HttpResponse:
        """API Gateway's MOCK answer to a CORS preflight: the template's static headers, whatever
        the request's Origin (a browser compares it with Access-Control-Allow-Origin)."""
        headers = [("Content-Type", "application/json"), *(route.preflight or ())]
        return HttpResponse(200, [*headers, ("x-amzn-RequestId", exchange.request_id)], b"{}")

    def _method_arn(self, method: str, path: str) -> str:
        return (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.names.api_id}/"
            f"{self.model.stage}/{method}/{path.lstrip('/')}"
        )

    def _authorize(  # noqa: PLR0917 - one request's parts, passed along the pipeline
        self,
        route: Route,
        request: HttpRequest,
        exchange: _Exchange,
        headers: dict[str, str],
        query: dict[str, str],
        query_string: str,
        path_params: dict[str, str],
    ) -> GatewayAnswer | None:
        spec = self.model.authorizers[route.authorizer or ""]
        identity = identity_values(spec, headers, query)
        if identity is None:
            return UNAUTHORIZED
        result = self.authorizer_cache.get(spec.name, identity)
        if result is None:
            event = self._authorizer_event(request, exchange, query_string, path_params)
            try:
                result = self._invoke_authorizer(spec.function, event, exchange.request_id)
            except UnauthorizedError:
                return UNAUTHORIZED
            except AuthorizerFailedError as exc:
                _log.error("authorizer %s failed: %s", spec.name, exc)
                return AUTHORIZER_FAILURE
            self.authorizer_cache.put(spec.name, identity, result, spec.ttl_seconds)
        exchange.authorizer = result
        decision = result.decide(self._method_arn(request.method, exchange.path))
        if decision == "explicit_deny":
            return EXPLICIT_DENY
        if decision == "implicit_deny":
            return IMPLICIT_DENY
        return None

    def _invoke_authorizer(self, function: str, event: dict[str, Any], request_id: str) -> AuthorizerResult:
        try:
            answer = self._pools[function].invoke(event, request_id)
        except Exception as exc:
            if str(exc) == "Unauthorized":
                raise UnauthorizedError from exc
            _log.exception("authorizer function %s raised", function)
            raise AuthorizerFailedError(f"{type(exc).__name__} in the authorizer") from exc
        return AuthorizerResult.parse(answer)

    def _check_usage_plan(self, exchange: _Exchange, headers: dict[str, str]) -> GatewayAnswer | None:
        if self.model.api_key_source == "AUTHORIZER":
            key = exchange.authorizer.usage_identifier_key if exchange.authorizer is not None else None
        else:
            key = headers.get("x-api-key")
        verdict, binding = self.plans.admit(key)
        exchange.api_key = key
        exchange.api_key_id = binding.key_id if binding is not None else None
        if verdict == "forbidden":
            return INVALID_API_KEY
        if verdict == "throttled":
            return THROTTLED
        if verdict == "quota_exceeded":
            return QUOTA_EXCEEDED
        return None

    def _integrate(self, route: Route, event: dict[str, Any], exchange: _Exchange) -> HttpResponse:
        """Invoke the route's function with Lambda's and API Gateway's limits: the function's own
        Timeout (then Lambda fails the invocation: 502), the integration timeout (504), and the
        6 MB synchronous response payload (502).

        The clocks start where AWS's do: the integration timeout once the invocation has a
        sandbox (its cold start counts; waiting for this pool's free sandbox does not, since Lambda
        scales out instead), the function's Timeout when its handler starts. Under a loaded machine
        a queue or a slow import must not turn into a 502 or 504 no deployed stack would give."""
        started = time.perf_counter()
        pool = self._pools[route.function]
        # What the route's integration request parameter maps to X-Amz-Tenant-Id (an authorizer
        # context value): Lambda's tenant id. A tenant-isolated function without one is refused.
        tenant_id = None
        if route.tenant_id_from is not None and exchange.authorizer is not None:
            tenant_id = exchange.authorizer.context.get(route.tenant_id_from)
        function_timeout = float(self.model.functions[route.function].timeout_s)
        integration_timeout = self.options.integration_timeout
        outcome: dict[str, Any] = {}
        phases = sandbox.InvokePhases()
        done = threading.Event()

        def run() -> None:
            try:
                outcome["result"] = pool.invoke(event, exchange.request_id, tenant_id, phases)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                outcome["error"] = exc
            finally:
                phases.end()
                done.set()

        # Another thread runs the invocation, so a function that outlives its limits can be
        # abandoned (Python cannot kill it; it finishes in the background, as a timed-out Lambda's
        # work is lost). Threads are reused: starting one per request cost about 2 % of a request.
        self._invokers.submit(run)
        try:
            phases.admitted.wait()
            integration_deadline = time.monotonic() + integration_timeout
            function_deadline = integration_deadline  # until the handler starts
            if phases.started.wait(integration_timeout):
                function_deadline = time.monotonic() + function_timeout
                done.wait(max(0.0, min(integration_deadline, function_deadline) - time.monotonic()))
            if not done.is_set():
                if integration_deadline <= function_deadline:
                    _log.warning(
                        "%s passed the integration timeout (%.1f s)", route.function, integration_timeout
                    )
                    return _answer(INTEGRATION_TIMEOUT, exchange, self.model)
                _log.warning(
                    "%s passed its Timeout (%.1f s): Lambda ends it", route.function, function_timeout
                )
                return _answer(HANDLER_FAILURE, exchange, self.model)
            if "error" in outcome:
                error = outcome["error"]
                if isinstance(error, sandbox.TenantIdRequiredError):
                    # Lambda's Invoke refuses the call; API Gateway answers a configuration error.
                    _log.error("%s %s: %s", exchange.method, exchange.path, error)
                    return _answer(INVOKE_REFUSED, exchange, self.model)
                _log.error(
                    "%s failed on %s %s", route.function, exchange.method, exchange.path, exc_info=error
                )
                return _answer(HANDLER_FAILURE, exchange, self.model)
            payload_bytes = _payload_bytes(outcome["result"])
            if payload_bytes > MAX_SYNC_RESPONSE_BYTES:
                _log.error(
                    "%s answered %d bytes; Lambda's synchronous limit is %d",
                    route.function,
                    payload_bytes,
                    MAX_SYNC_RESPONSE_BYTES,
                )
                return _answer(HANDLER_FAILURE, exchange, self.model)
            try:
                return self._map_result(outcome["result"], exchange)
            except Exception:  # noqa: BLE001 - a malformed answer is API Gateway's 502
                _log.exception(
                    "%s answered malformed on %s %s", route.function, exchange.method, exchange.path
                )
                return _answer(HANDLER_FAILURE, exchange, self.model)
        finally:
            exchange.integration_ms = int((time.perf_counter() - started) * 1000)

    @staticmethod
    def _map_result(result: Any, exchange: _Exchange) -> HttpResponse:
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

    # ------------------------------------------------------------------ events
    def _request_context(self, request: HttpRequest, exchange: _Exchange) -> dict[str, Any]:
        route = exchange.route
        moment = datetime.fromtimestamp(exchange.epoch_ms / 1000, UTC)
        host = request.header("Host") or f"{self.options.host}"
        return {
            "resourceId": route.path.strip("/").replace("/", "-")[:10] or "root" if route else "",
            "resourcePath": route.path if route else exchange.path,
            "httpMethod": request.method,
            "extendedRequestId": exchange.request_id[:18],
            "requestTime": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{self.model.stage}{exchange.path}",
            "accountId": ACCOUNT_ID,
            "protocol": request.version,
            "stage": self.model.stage,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": exchange.epoch_ms,
            "requestId": exchange.request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.client_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": request.header("User-Agent"),
                "user": None,
                "apiKey": exchange.api_key,
                "apiKeyId": exchange.api_key_id,
            },
            "domainName": host,
            "apiId": self.names.api_id,
        }

    @staticmethod
    def _header_maps(request: HttpRequest) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in request.headers:
            single[name] = value
            multi.setdefault(name, []).append(value)
        return (single or None), (multi or None)

    @staticmethod
    def _query_maps(query_string: str) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            single[name] = value
            multi.setdefault(name, []).append(value)
        return (single or None), (multi or None)

    def _body(self, request: HttpRequest) -> tuple[str | None, bool]:
        if not request.body:
            return None, False
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        binary_types = self.model.binary_media_types
        is_binary = any(
            kind in ("*/*", content_type) or (kind.endswith("/*") and content_type.startswith(kind[:-1]))
            for kind in binary_types
        )
        if not is_binary:
            try:
                return request.body.decode("utf-8"), False
            except UnicodeDecodeError:
                is_binary = True
        return base64.b64encode(request.body).decode(), True

    def _request_fields(
        self, request: HttpRequest, exchange: _Exchange, query_string: str, path_params: dict[str, str]
    ) -> dict[str, Any]:
        """What the proxy event and the REQUEST authorizer event share."""
        headers, multi_headers = self._header_maps(request)
        query, multi_query = self._query_maps(query_string)
        assert exchange.route is not None
        return {
            "resource": exchange.route.path,
            "path": exchange.path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": self._request_context(request, exchange),
        }

    def _proxy_event(
        self, request: HttpRequest, exchange: _Exchange, query_string: str, path_params: dict[str, str]
    ) -> dict[str, Any]:
        event = self._request_fields(request, exchange, query_string, path_params)
        if exchange.authorizer is not None:
            event["requestContext"]["authorizer"] = {
                "principalId": exchange.authorizer.principal_id,
                **exchange.authorizer.context,
                "integrationLatency": int((time.perf_counter() - exchange.started) * 1000),
            }
        event["body"], event["isBase64Encoded"] = self._body(request)
        return event

    def _authorizer_event(
        self, request: HttpRequest, exchange: _Exchange, query_string: str, path_params: dict[str, str]
    ) -> dict[str, Any]:
        fields = self._request_fields(request, exchange, query_string, path_params)
        return {"type": "REQUEST", "methodArn": self._method_arn(request.method, exchange.path), **fields}

    # ------------------------------------------------------------------ access log
    def _log_access(self, exchange: _Exchange, status: int) -> None:
        context = exchange.authorizer.context if exchange.authorizer is not None else {}
        values = {f"authorizer.{name}": value for name, value in context.items()}
        if exchange.authorizer is not None:
            values["authorizer.principalId"] = exchange.authorizer.principal_id
        values.update(
            {
                "requestId": exchange.request_id,
                "httpMethod": exchange.method,
                "resourcePath": exchange.route.path if exchange.route is not None else exchange.path,
                "path": f"/{self.model.stage}{exchange.path}",
                "stage": self.model.stage,
                "status": str(status),
                "responseLatency": str(int((time.perf_counter() - exchange.started) * 1000)),
                "integrationLatency": "" if exchange.integration_ms is None else str(exchange.integration_ms),
                "error.responseType": exchange.error_type,
                "identity.apiKeyId": exchange.api_key_id or "",
                "requestTimeEpoch": str(exchange.epoch_ms),
                "requestTime": formatdate(exchange.epoch_ms / 1000, usegmt=True),
            }
        )
        self.access_log.write(values)

    # ------------------------------------------------------------------ local-only pages
    def _local_page(self, method: str, path: str) -> HttpResponse | None:
        """Swagger UI at /docs and the spec at /openapi.json: the local stack only (design §5)."""
        if method != "GET":
            return None
        if path == "/openapi.json":
            spec = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
            spec["servers"] = [{"url": self.url, "description": "make dev"}]
            return HttpResponse(200, [("Content-Type", "application/json")], json.dumps(spec).encode())
        if path in ("/docs", "/docs/"):
            return HttpResponse(200, [("Content-Type", "text/html; charset=utf-8")], _SWAGGER_PAGE.encode())
        asset = path.removeprefix("/docs/")
        if asset in SWAGGER_ASSETS:
            kind = "application/javascript" if asset.endswith(".js") else "text/css"
            return HttpResponse(200, [("Content-Type", kind)], _swagger_asset(asset))
        return None


def _swagger_asset(name: str) -> bytes:
    """Swagger UI's files ship inside Powertools, so /docs works without a network."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui  # noqa: PLC0415

    return (Path(swagger_ui.__file__).parent / name).read_bytes()


_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tenantry API (local)</title>
<link rel="stylesheet" href="/docs/swagger-ui.min.css"></head>
<body><div id="ui"></div>
<script src="/docs/swagger-ui-bundle.min.js"></script>
<script>
SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", persistAuthorization: true});
</script>
</body>
</html>
"""


def redirect_stdout_to_stderr() -> contextlib.AbstractContextManager[Any]:
    """Handler logs to stderr, results to stdout: the shape ``sam local invoke`` gives."""
    return contextlib.redirect_stdout(sys.stderr)
