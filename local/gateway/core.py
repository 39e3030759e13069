"""The local gateway: API Gateway's request pipeline in front of the real handlers, in process.

For each request, in API Gateway's order: match a route from template.yaml (else 403 "Missing
Authentication Token"), refuse a body over the payload limit (413), run the authorizer (cached
per identity for ``ReauthorizeEvery``, the policy re-checked against each method ARN), check the
API key from ``usageIdentifierKey`` against the usage plans (throttle, then quota), build a REST
proxy event (payload v1), invoke the handler in a sandbox, map its answer (502 when it crashes)
and write one access-log line in the template's format, which also feeds metering.

This module holds the order (``Gateway._pipeline``) and what lives as long as the gateway: start
and stop, hot reload of the template and the code, and the work AWS does beside requests
(delivering the access log to metering, firing schedules, on-failure destinations). Each step is
its own module, named after API Gateway's stage it reproduces:

- ``exchange.py``: one request's record, its decoded path, the gateway's own answers to it;
- ``localpages.py``: Swagger UI and the spec, served only locally, before routing;
- ``auth.py``: the authorizer (identity sources, cache, invocation, policy decision);
- ``plans.py``: the API key against its usage plan (throttle, quota);
- ``proxyevent.py``: the integration request (the proxy and authorizer events);
- ``integration.py``: the invocation under Lambda's and API Gateway's limits, the answer mapped;
- ``accesslog.py``: the access-log line and its delivery to metering.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl

from local import aws_calls, template
from local.embedded import ACCOUNT_ID, REGION, EmbeddedAws
from local.gateway import asyncinvoke, sandbox
from local.gateway.accesslog import AccessLog, context_values
from local.gateway.api import ApiModel, FunctionSpec, Route, load_api, shared_env, template_files
from local.gateway.auth import AuthorizerCache, NeedsInvocation, authorize, identity_headers
from local.gateway.exchange import Exchange, decoded_path, gateway_answer, new_exchange
from local.gateway.integration import STREAM_IDLE_SECONDS, LambdaProxyIntegration, preflight
from local.gateway.intrinsics import LocalNames
from local.gateway.localpages import LocalPages
from local.gateway.plans import UsagePlans, check_api_key, load_bindings
from local.gateway.proxyevent import ProxyEvents
from local.gateway.responses import BAD_REQUEST, GATEWAY_BUG, HEADERS_TOO_LARGE, MISSING_TOKEN, TOO_LARGE
from local.gateway.schedules import LocalScheduler
from local.gateway.server import HttpRequest, HttpResponse, HttpServer, ResponseStream

_log = logging.getLogger("tenantry.local.gateway")

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit for REST APIs
LAYERS_DIR = template.REPO_ROOT / "layers"

# What a local handler sees on top of the template's env: no X-Ray daemon here.
INTEGRATION_TIMEOUT_ENV = "INTEGRATION_TIMEOUT_SECONDS"  # read by tenantry.deadline
LOCAL_FUNCTION_ENV = {"POWERTOOLS_TRACE_DISABLED": "true", "AWS_SAM_LOCAL": "true"}
SCHEDULE_GROUP_ENV = "SCHEDULE_GROUP"
# Each function's stdout and stderr: $TENANTRY_HOME/logs/<LogicalId>.log (a log group per function).
LOGS_FOLDER = "logs"


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
    # API Gateway's integration timeout for every route (tenantry dev --integration-timeout);
    # None: each route's from the template (29 s where it sets none), as on AWS.
    integration_timeout: float | None = None
    # Template parameters' values in place of their defaults (tenantry dev --parameter).
    parameters: dict[str, str] = field(default_factory=dict)


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
        self._logical_ids: set[str] = set()
        self._watcher = sandbox.Watcher()
        self._server: HttpServer | None = None
        self._local_pages = LocalPages(lambda: self.url)
        self._events = ProxyEvents(self.names.api_id, options.host, self.model)
        self._integration = LambdaProxyIntegration(options.integration_timeout)
        self.access_log = AccessLog(
            self.model.access_log_format,
            path=options.home / "access.log" if options.home is not None else None,
            echo=options.access_log_echo,
            deliver=self._deliver_access_log if options.metering else None,
        )
        self._queue_urls: dict[str, str] = {}
        aws.add_flush_listener(self._on_flush)
        aws.add_change_listener(self.plans.invalidate)
        self.scheduler = LocalScheduler(
            aws.client("scheduler"),
            self._schedule_groups(),
            self._invoke_by_arn,
            on_exhausted=self._dead_letter,
        )

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> None:
        # The IAM test tier records what each function calls (only when TENANTRY_AWS_CALLS is set).
        self._logical_ids = set(self.model.functions) | set(template.template().get("Resources", {}))
        aws_calls.install_from_env(self._logical_ids)
        self.aws.configure_process()
        sandbox.start_fork_server()
        self._rebuild_pools()
        self._server = HttpServer(
            self.handle,
            self.options.host,
            self.options.port,
            max_body=self.options.max_body_bytes,
            bad_request=lambda status: gateway_answer(
                HEADERS_TOO_LARGE if status == 431 else BAD_REQUEST, new_exchange("", ""), self.model
            ),
            on_loop=self.handle_on_loop,
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
        for pool in list(self._pools.values()):
            pool.close()

    # ------------------------------------------------------------------ template and code
    def _load_model(self) -> ApiModel:
        return load_api(self.options.overlays, names=self.names, authorizer_ttl=self.options.authorizer_ttl)

    def _rebuild_pools(self) -> None:
        with self._model_lock:
            # Variables every function agrees on go into this process's os.environ too, for its
            # own calls (the admin key at start, tenantry invoke's samples); each sandbox has its
            # own env. The functions learn the integration timeout (tenantry.deadline caps budgets
            # by it): the template's env says it where a route's differs; a timeout for every route
            # given on the command line overrides it.
            local_env = dict(LOCAL_FUNCTION_ENV)
            if self.options.integration_timeout is not None:
                local_env[INTEGRATION_TIMEOUT_ENV] = f"{self.options.integration_timeout:g}"
            for name, value in {**shared_env(self.model), **local_env}.items():
                os.environ[name] = value
            recording = bool(os.environ.get(aws_calls.ENV_VAR))
            settings = sandbox.PoolSettings(
                local_env=local_env,
                scoped_names=frozenset(name for spec in self.model.functions.values() for name in spec.env),
                layer_dirs=(str(LAYERS_DIR / "core"),),
                max_size=self.options.pool_size,
                log_folder=self.options.home / LOGS_FOLDER if self.options.home is not None else None,
                record_calls_for=tuple(sorted(self._logical_ids)) if recording else (),
            )
            previous, self._pools = (
                self._pools,
                {
                    logical_id: sandbox.FunctionPool(spec, settings)
                    for logical_id, spec in self.model.functions.items()
                },
            )
        for pool in previous.values():
            pool.close()

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
        self._events = ProxyEvents(self.names.api_id, self.options.host, model)
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

    def _dead_letter(self, function_arn: str, payload: dict[str, Any]) -> None:
        """An asynchronous invocation whose attempts all failed: its event goes to the function's
        DeadLetterQueue, as Lambda sends it (the message body is the event itself)."""
        pool = next((pool for pool in self._pools.values() if pool.spec.arn == function_arn), None)
        if pool is None or pool.spec.dead_letter_arn is None:
            _log.error("%s has no dead-letter queue: its failed event is dropped", function_arn)
            return
        self._send_to_destination(pool.spec, pool.spec.dead_letter_arn, json.dumps(payload))

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
        with aws_calls.acting_as(spec.logical_id):
            self.aws.client("sqs").send_message(QueueUrl=url, MessageBody=body)

    # ------------------------------------------------------------------ the request pipeline
    def handle(self, request: HttpRequest) -> HttpResponse:
        raw_path, _, query_string = request.target.partition("?")
        exchange = new_exchange(request.method, decoded_path(raw_path))
        try:
            prepared = self._prepare(request, exchange, query_string, on_loop=False)
            assert prepared is not None  # None only on the loop
            response = prepared if isinstance(prepared, HttpResponse) else self._integrate(prepared, exchange)
        except Exception:  # noqa: BLE001 - a gateway bug is a 500, never a traceback to the client
            _log.exception("the local gateway failed on %s %s", request.method, raw_path)
            response = gateway_answer(GATEWAY_BUG, exchange, self.model)
        self._log_access(exchange, response)
        return response

    def handle_on_loop(self, request: HttpRequest, complete: Callable[[HttpResponse], None]) -> bool:
        """The same pipeline on the server's event loop, without a thread, as far as nothing in it
        blocks: the route's checks from what is cached (an authorizer's answer, the usage plans),
        then the invocation in a warm idle sandbox whose answer the loop reads. False, with
        nothing done, when a step would block (an authorizer to invoke, records to reload, a
        local page): the request goes to a thread. Past the usage plan's check (which counts the
        request), a cold start or a streamed answer goes on on a thread."""
        server = self._server
        assert server is not None
        raw_path, _, query_string = request.target.partition("?")
        exchange = new_exchange(request.method, decoded_path(raw_path))

        def answer(response: HttpResponse) -> None:
            complete(response)  # first: the log line is not on the way to the client
            self._log_access(exchange, response)

        try:
            prepared = self._prepare(request, exchange, query_string, on_loop=True)
            if prepared is None:
                return False
            if isinstance(prepared, HttpResponse):
                answer(prepared)
                return True
            invocation = prepared
            route, event = invocation
            if not route.streamed and self._integration.invoke_on_loop(
                route, event, exchange, self._pools[route.function], self.model, server.loop, answer
            ):
                return True
        except Exception:  # noqa: BLE001 - a gateway bug is a 500, never a traceback to the client
            _log.exception("the local gateway failed on %s %s", request.method, raw_path)
            answer(gateway_answer(GATEWAY_BUG, exchange, self.model))
            return True

        def on_thread() -> None:
            try:
                response = self._integrate(invocation, exchange)
            except Exception:  # noqa: BLE001 - a gateway bug is a 500
                _log.exception("the local gateway failed on %s %s", request.method, raw_path)
                response = gateway_answer(GATEWAY_BUG, exchange, self.model)
            answer(response)

        server.executor.submit(on_thread)
        return True

    def _log_access(self, exchange: Exchange, response: HttpResponse) -> None:
        if exchange.route is None and not exchange.error_type:
            return
        if isinstance(response.body, ResponseStream):
            # API Gateway logs a streamed answer when it ends: its whole latency and length.
            response.body.add_done_callback(lambda stream: self._log_stream(exchange, response, stream))
        else:
            values = context_values(exchange, response.status, self.model.stage, len(response.body))
            self.access_log.write(values)

    def _log_stream(self, exchange: Exchange, response: HttpResponse, stream: ResponseStream) -> None:
        # The function ran as long as the stream (or longer, when the client left first).
        exchange.integration_ms = int((time.perf_counter() - exchange.started) * 1000)
        self.access_log.write(context_values(exchange, response.status, self.model.stage, stream.sent_bytes))

    def _prepare(
        self, request: HttpRequest, exchange: Exchange, query_string: str, *, on_loop: bool
    ) -> HttpResponse | tuple[Route, dict[str, Any]] | None:
        """API Gateway's steps before the integration: its answer when one of them answers, else
        the route and the proxy event to invoke it with. ``on_loop``: None instead, before any
        step that counts the request, when a step would block."""
        if on_loop and LocalPages.serves(request.method, exchange.path):
            return None
        local = self._local_pages.answer(request.method, exchange.path)
        if local is not None:
            return local
        match = self.model.match(request.method, exchange.path)
        if match is None:
            return gateway_answer(MISSING_TOKEN, exchange, self.model)
        route, path_params = match
        exchange.route = route
        if route.preflight is not None:
            return preflight(route, exchange)
        if request.body_too_large:
            return gateway_answer(TOO_LARGE, exchange, self.model)
        headers = identity_headers(request.headers)
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        if route.authorizer is not None:
            try:
                denial = authorize(
                    route,
                    request,
                    exchange,
                    headers,
                    query,
                    query_string,
                    path_params,
                    cache=self.authorizer_cache,
                    events=self._events,
                    pools=self._pools,
                    model=self.model,
                    may_invoke=not on_loop,
                )
            except NeedsInvocation:
                return None
            if denial is not None:
                return gateway_answer(denial, exchange, self.model)
        if route.api_key_required:
            if on_loop and not self.plans.loaded:
                return None
            denial = check_api_key(
                self.plans, exchange, api_key_source=self.model.api_key_source, headers=headers
            )
            if denial is not None:
                return gateway_answer(denial, exchange, self.model)
        return route, self._events.proxy_event(request, exchange, query_string, path_params)

    def _integrate(self, prepared: tuple[Route, dict[str, Any]], exchange: Exchange) -> HttpResponse:
        route, event = prepared
        if route.streamed:
            return self._integration.invoke_streamed(
                route,
                event,
                exchange,
                pool=self._pools[route.function],
                model=self.model,
                idle_seconds=STREAM_IDLE_SECONDS.get(
                    self.model.endpoint_type, STREAM_IDLE_SECONDS["REGIONAL"]
                ),
            )
        return self._integration.invoke(
            route, event, exchange, pool=self._pools[route.function], model=self.model
        )
