"""The embedded AWS of the local stack: moto's server on loopback, serialized, snapshotted.

One process-wide moto server answers DynamoDB and API Gateway for everything local: the gateway's
in-process handlers, ``tenantry invoke``, the CLI and ``sam local invoke`` in Docker. It is built
from template.yaml (tables, TTL settings, usage plans) and differs from a bare
``ThreadedMotoServer`` in these ways:

- **One lock.** Moto is not safe under concurrent requests, and the event store's gapless
  positions rely on each DynamoDB operation being atomic, so every request runs alone.
- **Durability.** With a ``home`` folder, every state-changing request is recorded in a
  write-ahead journal (``local/journal.py``) and on disk before its answer leaves; the DynamoDB
  items, the API keys (with their ids and values) and the usage-plan keys are also snapshotted
  to ``home/aws-state.json`` on stop and periodically, which compacts the journal. On start the
  snapshot is restored and the journal replayed over it. ``make dev-reset`` deletes the folder.
- **In process, when it can be.** Boto3 clients of this process reach the server through
  ``local/transport.py`` (a botocore ``before-send`` handler) instead of a loopback HTTP
  connection; other processes use HTTP. Both go through the same WSGI wrapper chain.
- **The authorizer-cache flush.** Moto answers ``FlushStageAuthorizersCache`` with 404, so the
  wrapper answers ``DELETE /restapis/{id}/stages/{stage}/cache/authorizers`` itself (202, as API
  Gateway does) and calls the registered flush listeners (the local gateway).
- **Change signals.** Listeners hear about every API Gateway write (key created, disabled, moved
  between plans, plan patched), so the gateway's usage-plan view never goes stale. And a change
  feed (``local/changefeed.py``) tells the processes watching a DynamoDB partition when a write
  to it succeeded: a publish wakes the stack's open subscriptions at once, where on AWS they
  poll. Its address is ``TENANTRY_CHANGE_FEED`` in every process this server configures.
- **Faults, on request.** With a :class:`local.faults.FaultSpec` (``make dev FAULTS=…``) a
  :class:`local.faults.FaultMiddleware` sits in front of the lock and answers some requests with
  AWS's errors (conflicts, throttling, stale index reads…); without one nothing is wrapped.
- **Tenant-scoped credentials.** Its STS hands out TenantDataRole sessions, and DynamoDB refuses
  their access outside the tagged tenant's partition, as IAM does on AWS (local/access.py).
- **DynamoDB's and API Gateway's own rules** where moto leaves them out, as WSGI middleware in
  front of moto: a transaction's ``ClientRequestToken`` (local/dynamodb_rules.py), a key in one
  usage plan per stage (local/apigateway_rules.py).
- **Transactions at DynamoDB's cost.** Moto deep-copies every table a ``TransactWriteItems``
  names before running it, so its cost grew with the table; the middleware of
  ``local/transactions.py`` runs a transaction as moto's own single-item operations instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.config import Config

from local import access, faults, journal, template, transport
from local.apigateway_rules import ApiGatewayRules
from local.changefeed import ChangeFeed
from local.dynamodb_rules import DynamoDBRules
from local.gateway.server import HttpRequest, HttpResponse, ThreadedHttpServer
from local.transactions import ItemLevelTransactions
from local.wire import Answer, WsgiApp, call, read_body, request_environ, respond, signature
from tenantry.changes import FEED_ENV

REGION = template.REGION
ACCOUNT_ID = template.ACCOUNT_ID
STAGE_NAME = "v1"
STATE_FILE = "aws-state.json"
ENDPOINT_FILE = "embedded.json"
# The journal makes each write durable at once; snapshots only compact it, so they can be rare.
SNAPSHOT_EVERY_SECONDS = 30.0
SNAPSHOT_JOURNAL_BYTES = 16 * 1024 * 1024
SNAPSHOT_CHECK_SECONDS = 2.0
# DynamoDB's largest request (a BatchWriteItem of 25 items of 400 KB) with room to spare.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
# The services whose requests go straight to their moto handler (what the stack and its functions
# call), with the host their backend's URL table expects where it is not <service>.<region>.
_ROUTED_SERVICES = frozenset({"dynamodb", "apigateway", "sts", "sqs", "ssm", "logs", "scheduler"})
_SERVICE_HOSTS = {"sts": "sts.amazonaws.com"}
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

# DynamoDB operations that never change state; everything else marks the snapshot dirty.
_READ_ONLY_TARGETS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "DescribeTable",
        "DescribeTimeToLive",
        "ListTables",
        "ListTagsOfResource",
        "DescribeContinuousBackups",
        "DescribeEndpoints",
        # SQS (JSON protocol): what the journal keeps of a queue is its messages; receiving one
        # only hides it for a while.
        "GetQueueUrl",
        "GetQueueAttributes",
        "ListQueues",
        "ReceiveMessage",
    }
)
_SQS_TARGET_PREFIX = "AmazonSQS."
# The services whose state a snapshot and the journal hold (DynamoDB items, API keys, queued
# messages). A call to any other (STS's AssumeRole, CloudWatch Logs) changes nothing that survives
# a restart, so it is neither journaled nor snapshotted: an AssumeRole used to copy the whole
# state before its answer.
_PERSISTED_SERVICES = frozenset({"dynamodb", "apigateway", "sqs"})
_SIGNED_SERVICE = re.compile(r"Credential=[^/,]+/[^/,]+/[^/,]+/([^/,]+)/aws4_request")
_FLUSH_PATH = re.compile(r"^/restapis/(?P<api_id>[^/]+)/stages/(?P<stage>[^/]+)/cache/authorizers/?$")
_APIGATEWAY_PATHS = ("/apikeys", "/usageplans", "/restapis")

FlushListener = Callable[[str, str], None]
ChangeListener = Callable[[], None]

_log = logging.getLogger("tenantry.local.embedded")


def client_env(endpoint_url: str) -> dict[str, str]:
    """The env a process (or a Docker container) needs to talk to the embedded server."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        **FAKE_CREDENTIALS,
    }


def configure_process(endpoint_url: str) -> None:
    """Point this process's boto3 (and tenantry's cached clients) at the embedded server."""
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_DYNAMODB"):
        os.environ.pop(variable, None)
    os.environ.update(client_env(endpoint_url))
    with contextlib.suppress(ImportError):
        from tenantry import caches  # noqa: PLC0415 - the layer is optional for this module

        caches.clear_all()


def running_endpoint(home: Path) -> str | None:
    """The endpoint of an EmbeddedAws already serving ``home`` (e.g. ``make dev``), if it answers."""
    try:
        info = json.loads((home / ENDPOINT_FILE).read_text(encoding="utf-8"))
        endpoint = str(info["endpoint_url"])
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    try:
        client_for("dynamodb", endpoint, timeout=1).list_tables(Limit=1)
    except Exception:  # noqa: BLE001 - anything but an answer means "not running"
        return None
    return endpoint


def _connection(endpoint_url: str, timeout: float) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint_url,
        "region_name": REGION,
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "config": Config(connect_timeout=timeout, read_timeout=max(timeout, 10), retries={"max_attempts": 2}),
    }


def client_for(service: str, endpoint_url: str, timeout: float = 5) -> Any:
    return boto3.client(service, **_connection(endpoint_url, timeout))  # type: ignore[call-overload]


def resource_for(service: str, endpoint_url: str, timeout: float = 5) -> Any:
    """A boto3 resource (plain Python values in and out, as the stores use) on the embedded AWS."""
    return boto3.resource(service, **_connection(endpoint_url, timeout))  # type: ignore[call-overload]


class _ServiceRouter:
    """Moto's services, each request handed to its service's handler the way moto's in-process mock
    hands it (``moto.core.botocore_stubber``): the service from the request's signature, the
    handler from that backend's URL table, moto's own request type. Moto's server wraps the same
    handlers in a Flask app per service, found anew for every request by its host, which cost about
    as much as the handler. A request this does not place goes to that server app unchanged."""

    def __init__(self) -> None:
        from moto import backends  # noqa: PLC0415 - moto's server is heavy to import
        from moto.core.request import Request  # noqa: PLC0415
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
            DomainDispatcherApplication,
            create_backend_app,
        )

        self._backends: Any = backends
        self._request_type: Any = Request
        self._server_app: WsgiApp = DomainDispatcherApplication(create_backend_app)
        self._urls: dict[str, list[tuple[re.Pattern[str], Callable[..., Any]]]] = {}

    def _handlers(self, service: str) -> list[tuple[re.Pattern[str], Callable[..., Any]]]:
        found = self._urls.get(service)
        if found is None:
            # Any instance serves: only its URL table is read (as moto's own stub picks one).
            per_account = self._backends.get_backend(service)[ACCOUNT_ID]
            backend = per_account[REGION] if REGION in per_account else per_account["aws"]
            found = self._urls[service] = [
                (re.compile(url), handler) for url, handler in backend.urls.items()
            ]
        return found

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.exceptions import HTTPException  # noqa: PLC0415 - moto raises werkzeug's

        signed = signature(str(environ.get("HTTP_AUTHORIZATION", "")))
        if signed is None or signed.service not in _ROUTED_SERVICES:
            return self._server_app(environ, start_response)
        host = _SERVICE_HOSTS.get(signed.service, "{service}.{region}.amazonaws.com")
        origin = host.format(service=signed.service, region=signed.region)
        url = f"https://{origin}{environ.get('PATH_INFO', '/')}"
        handler = next(
            (handler for pattern, handler in self._handlers(signed.service) if pattern.match(url)), None
        )
        if handler is None:
            return self._server_app(environ, start_response)
        request = self._request_type(environ)  # as moto's server builds it, from the environ
        try:
            status, answer_headers, body = handler(request, request.raw_url, dict(request.headers))
        except HTTPException as exc:
            status, answer_headers, body = exc.code, exc.get_headers(), exc.get_body()
        data = body.encode() if isinstance(body, str) else bytes(body or b"")
        code = int(dict(answer_headers).get("status", status))
        listed = [(str(name), str(value)) for name, value in dict(answer_headers).items() if name != "status"]
        return respond(start_response, Answer(code, tuple(listed), data))


def wsgi_handler(app: WsgiApp) -> Callable[[HttpRequest], HttpResponse]:
    """The embedded server's HTTP requests, each as a WSGI request to ``app``."""

    def handle(request: HttpRequest) -> HttpResponse:
        path, _, query = request.target.partition("?")
        headers: dict[str, str] = {}
        for name, value in request.headers:
            if name.lower() != "content-length":
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        environ = request_environ(request.method, unquote(path), request.body, headers)
        environ["QUERY_STRING"] = query
        environ["REMOTE_ADDR"] = request.client_ip
        answer = call(app, environ)
        return HttpResponse(answer.status, list(answer.headers), answer.body)

    return handle


class _SerializedApp:
    """WSGI middleware: one request at a time into moto, plus the flush route, change signals and
    the journal (an answer leaves only once what it did, or saw, is on disk)."""

    def __init__(self, app: Any, owner: EmbeddedAws) -> None:
        self._app = app
        self._owner = owner
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("PATH_INFO", ""))
        flush = _FLUSH_PATH.match(path)
        if flush is not None and method == "DELETE":
            self._owner._notify_flush(flush["api_id"], flush["stage"])
            start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", "0")])
            return [b""]
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        operation = target.rpartition(".")[2]
        persisted = _persisted(environ)
        changes = persisted and (operation not in _READ_ONLY_TARGETS if target else method != "GET")
        request_body = read_body(environ) if changes and operation in journal.ITEM_WRITES else b""
        statuses: list[str] = []

        def answering(status: str, headers: Any, *exc_info: Any) -> Any:
            statuses.append(status)
            return start_response(status, headers, *exc_info)

        with self.lock:
            body = b"".join(self._app(environ, answering))
            if changes:
                durable_at, needs_snapshot = self._owner._record(target, path, request_body)
            else:
                durable_at, needs_snapshot = (self._owner._seen() if persisted else 0), False
        if needs_snapshot:
            self._owner.snapshot()
        self._owner._wait_durable(durable_at)
        if request_body and statuses and statuses[-1].startswith("2"):
            self._owner._signal_items(operation, request_body)
        if changes:
            self._owner._mark_dirty()
            if not target and path.startswith(_APIGATEWAY_PATHS):
                self._owner._notify_change()
        return [body]


def _persisted(environ: dict[str, Any]) -> bool:
    """Whether the request is to a service whose state the snapshot and journal keep; a request
    whose signature does not name its service counts as one."""
    found = _SIGNED_SERVICE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return found is None or found.group(1) in _PERSISTED_SERVICES


class EmbeddedAws:
    """Moto's DynamoDB and API Gateway on 127.0.0.1, built from template.yaml; a context manager."""

    def __init__(
        self,
        home: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_spec: faults.FaultSpec | None = None,
        *,
        change_feed: bool = True,
    ) -> None:
        self.home = home
        self._with_change_feed = change_feed
        self.fault_spec = fault_spec
        self.host = host
        self.port = port
        self.endpoint_url = ""
        self.api_id = ""
        self._server: ThreadedHttpServer | None = None
        # IAM's tenant wall (dynamodb:LeadingKeys for TenantDataRole sessions), inside the lock.
        self.access = access.Enforcer(access.KeySchemas(), access.Grants())
        self._app: _SerializedApp | None = None
        self.fault_injector: faults.FaultInjector | None = None
        self._flush_listeners: list[FlushListener] = []
        self._change_listeners: list[ChangeListener] = []
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._snapshotter: threading.Thread | None = None
        self._snapshot_lock = threading.Lock()
        self._journal: journal.Journal | None = None
        self._last_snapshot = 0.0
        self.change_feed: ChangeFeed | None = None
        self._key_names: dict[str, tuple[str, ...]] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> EmbeddedAws:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:

        moto_app = _ServiceRouter()
        keys = self._key_names = template.key_attributes()
        if self._with_change_feed:
            self.change_feed = ChangeFeed(self.host)
            self.change_feed.start()
        rules = DynamoDBRules(
            ApiGatewayRules(ItemLevelTransactions(moto_app, lambda table: keys.get(table, ())))
        )
        self._app = _SerializedApp(access.EnforcingApp(rules, self.access), self)
        # Faults decide from the request before it queues for the lock, as a real service would.
        served = faults.wrap(self._app, self.fault_spec)
        self.fault_injector = served.injector if isinstance(served, faults.FaultMiddleware) else None
        self._server = ThreadedHttpServer(
            wsgi_handler(served),
            self.host,
            self.port,
            max_body=MAX_REQUEST_BYTES,
            bad_request=lambda status: HttpResponse(status, [("Content-Type", "text/plain")], b"bad request"),
        )
        self.port = self._server.port
        self.endpoint_url = f"http://{self.host}:{self.port}"
        transport.register(self.endpoint_url, served)
        self._server.start()
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
        journal_seq = self._provision()
        if isinstance(served, faults.FaultMiddleware):
            served.active = True  # provisioning and restoring ran fault-free
        self._dirty.clear()
        if self.home is not None:
            self._journal = journal.Journal(self.home, journal_seq)
            # Compact whatever the replay applied before the first request can add to it.
            self.snapshot()
            self._write_endpoint_file()
            self._snapshotter = threading.Thread(
                target=self._snapshot_loop, name="embedded-aws-snapshot", daemon=True
            )
            self._snapshotter.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        if self._snapshotter is not None:
            self._snapshotter.join(timeout=10)
        if self.home is not None:
            self.snapshot()
            with contextlib.suppress(OSError):
                endpoint_file = self.home / ENDPOINT_FILE
                if json.loads(endpoint_file.read_text(encoding="utf-8")).get("pid") == os.getpid():
                    endpoint_file.unlink()
        self._server.stop()
        if self.change_feed is not None:
            self.change_feed.stop()
            self.change_feed = None
        transport.unregister(self.endpoint_url)
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._server = None
        _reset_moto_state()

    # ------------------------------------------------------------------ clients and listeners
    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on the embedded endpoint (fake credentials, us-east-1)."""
        return client_for(service, self.endpoint_url)

    def client_env(self) -> dict[str, str]:
        """:func:`client_env`, and the change feed's address (tenantry.changes)."""
        env = client_env(self.endpoint_url)
        if self.change_feed is not None:
            env[FEED_ENV] = self.change_feed.address
        return env

    def configure_process(self) -> None:
        configure_process(self.endpoint_url)
        if self.change_feed is not None:
            os.environ[FEED_ENV] = self.change_feed.address
        else:
            os.environ.pop(FEED_ENV, None)

    def add_flush_listener(self, listener: FlushListener) -> None:
        """``listener(api_id, stage)`` runs on every authorizer-cache flush request."""
        self._flush_listeners.append(listener)

    def add_change_listener(self, listener: ChangeListener) -> None:
        """``listener()`` runs after every API Gateway write (keys, usage plans, plan keys)."""
        self._change_listeners.append(listener)

    def process_env(self) -> dict[str, str]:
        """What a process that uses this server needs in its env: the client settings and each
        template table's variable naming its local table (as the functions' env does)."""
        tables = {
            env_var: template.local_table_name(logical_id)
            for env_var, logical_id in template.table_env_vars().items()
        }
        return {**self.client_env(), **tables}

    def _notify_flush(self, api_id: str, stage: str) -> None:
        for listener in list(self._flush_listeners):
            try:
                listener(api_id, stage)
            except Exception:  # noqa: BLE001 - a listener's bug must not fail the flush request
                _log.exception("flush listener failed")

    def _notify_change(self) -> None:
        for listener in list(self._change_listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a listener's bug must not fail the AWS request
                _log.exception("change listener failed")

    def _mark_dirty(self) -> None:
        self._dirty.set()

    def _signal_items(self, operation: str, request_body: bytes) -> None:
        """Tell the change feed's watchers which partitions a successful item write touched."""
        feed = self.change_feed
        if feed is None or not feed.watched:
            return
        try:
            touched = journal.touched_items(operation, json.loads(request_body), self._template_key)
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        partitions = []
        for table_name, key in touched:
            (value,) = key[self._key_names[table_name][0]].values()
            partitions.append((table_name, str(value)))
        feed.changed(partitions)

    def _template_key(self, table_name: str, item: dict[str, Any]) -> dict[str, Any] | None:
        names = self._key_names.get(table_name, ())
        if not names or not all(name in item for name in names):
            return None
        return {name: item[name] for name in names}

    # ------------------------------------------------------------------ the journal (request lock held)
    def _record(self, target: str, path: str, request_body: bytes) -> tuple[int, bool]:
        """Journal what a state-changing request did: (seq to wait for, whether to snapshot instead)."""
        if self._journal is None:
            return 0, False
        operation = target.rpartition(".")[2]
        if target.startswith(_SQS_TARGET_PREFIX):
            # A queue holds few messages (metering's failed batches): record all of them.
            return self._journal.append({"sqs": _dump_queues()}), False
        if operation in journal.ITEM_WRITES:
            try:
                request = json.loads(request_body)
                touched = journal.touched_items(operation, request, _key_of)
            except (ValueError, KeyError, TypeError, AttributeError):
                # Moto refused a body this malformed, so nothing changed.
                return self._journal.last_seq, False
            items = [_post_image(table, key) for table, key in touched]
            return (self._journal.append({"items": items}) if items else self._journal.last_seq), False
        if not operation and path.startswith(_APIGATEWAY_PATHS):
            record = {"api_keys": _dump_api_keys(), "usage_plans": _dump_runtime_plans()}
            return self._journal.append(record), False
        # A rarer change (a table's settings, a tag): a snapshot records it before the answer.
        return self._journal.last_seq, True

    def _seen(self) -> int:
        """The last journaled write a read can have seen."""
        return self._journal.last_seq if self._journal is not None else 0

    def _wait_durable(self, seq: int) -> None:
        if self._journal is not None and seq:
            self._journal.wait_durable(seq)

    # ------------------------------------------------------------------ provisioning and snapshots
    def _provision(self) -> int:
        """Create tables, TTL settings, usage plans and the REST API from the template; restore the
        snapshot with the journal applied over it. The journal seq the restored state covers."""
        state = self._read_state()
        dynamodb = self.client("dynamodb")
        apigateway = self.client("apigateway")
        template.create_tables(dynamodb, template.LOCAL_STACK_NAME)
        plan_ids = self._create_usage_plans(apigateway)
        self.api_id = self._create_rest_api(apigateway, state.get("api_id"))
        sqs = self.client("sqs")
        queue_urls = template.create_queues(sqs, template.LOCAL_STACK_NAME)
        if self.home is None:
            return 0
        state, applied = journal.apply(
            state, journal.read_records(self.home, int(state.get("journal_seq", 0))), _key_of
        )
        if applied:
            _log.warning("replayed %d journal records over the snapshot", applied)
        self._restore_items(dynamodb, state.get("dynamodb", {}))
        plan_ids.update(self._restore_runtime_plans(apigateway, state.get("usage_plans", [])))
        self._restore_api_keys(apigateway, state.get("api_keys", []), plan_ids)
        self._restore_messages(sqs, state.get("sqs", {}), queue_urls)
        return int(state.get("journal_seq", 0))

    @staticmethod
    def _create_usage_plans(apigateway: Any) -> dict[str, str]:
        from moto.apigateway.utils import ApigwUsagePlanIdentifier  # noqa: PLC0415
        from moto.utilities.id_generator import moto_id_manager  # noqa: PLC0415

        # Stable plan ids (derived from the name) so ids seen before a restart still mean the same plan.
        identifiers = []
        for definition in template.usage_plan_definitions().values():
            identifier = ApigwUsagePlanIdentifier(ACCOUNT_ID, REGION, definition["name"])
            moto_id_manager.set_custom_id(identifier, _stable_id(definition["name"]))
            identifiers.append(identifier)
        try:
            return template.create_usage_plans(apigateway, template.LOCAL_STACK_NAME)
        finally:
            for identifier in identifiers:
                moto_id_manager.unset_custom_id(identifier)

    @staticmethod
    def _create_rest_api(apigateway: Any, previous_id: str | None) -> str:
        """The REST API whose id handlers see as ``requestContext.apiId`` (and flush by)."""
        from moto.apigateway.utils import ApigwRestApiIdentifier  # noqa: PLC0415
        from moto.utilities.id_generator import moto_id_manager  # noqa: PLC0415

        name = f"{template.LOCAL_STACK_NAME}-api"
        for api in apigateway.get_rest_apis(limit=500).get("items", []):
            if api["name"] == name:
                return str(api["id"])
        identifier = ApigwRestApiIdentifier(ACCOUNT_ID, REGION, name)
        moto_id_manager.set_custom_id(identifier, previous_id or _stable_id(name))
        try:
            return str(apigateway.create_rest_api(name=name, description="make dev")["id"])
        finally:
            moto_id_manager.unset_custom_id(identifier)

    @staticmethod
    def _restore_items(dynamodb: Any, tables: dict[str, list[dict[str, Any]]]) -> None:
        existing = set(dynamodb.list_tables().get("TableNames", []))
        for table_name, items in tables.items():
            if table_name not in existing:
                _log.warning(
                    "snapshot table %s is no longer in template.yaml; its items are dropped", table_name
                )
                continue
            try:
                for start in range(0, len(items), 25):
                    requests = [
                        {"PutRequest": {"Item": _binary_in(item)}} for item in items[start : start + 25]
                    ]
                    pending: dict[str, Any] = {table_name: requests}
                    while pending:
                        pending = (
                            dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                        )
            except dynamodb.exceptions.ClientError as exc:
                # A table whose key schema changed in template.yaml (the idempotency records were
                # re-keyed by tenant): its old items cannot be put back.
                _log.warning(
                    "snapshot items of %s no longer fit its key schema; dropped (%s)", table_name, exc
                )

    @staticmethod
    def _restore_runtime_plans(apigateway: Any, plans: list[dict[str, Any]]) -> dict[str, str]:
        """The usage plans made at run time (a tenant's own, for its limit overrides), with their
        ids, limits and tags: plan name → id."""
        from moto.apigateway.utils import ApigwUsagePlanIdentifier  # noqa: PLC0415
        from moto.utilities.id_generator import moto_id_manager  # noqa: PLC0415

        ids: dict[str, str] = {}
        for plan in plans:
            identifier = ApigwUsagePlanIdentifier(ACCOUNT_ID, REGION, plan["name"])
            moto_id_manager.set_custom_id(identifier, plan["id"])
            try:
                arguments = {
                    name: plan[name] for name in ("name", "description", "throttle", "quota", "tags")
                }
                ids[plan["name"]] = str(apigateway.create_usage_plan(**arguments)["id"])
            finally:
                moto_id_manager.unset_custom_id(identifier)
        return ids

    @staticmethod
    def _restore_api_keys(apigateway: Any, keys: list[dict[str, Any]], plan_ids: dict[str, str]) -> None:
        from moto.apigateway.utils import ApigwApiKeyIdentifier  # noqa: PLC0415
        from moto.utilities.id_generator import moto_id_manager  # noqa: PLC0415

        for key in keys:
            # The key keeps its id: the ApiKeys table refers to it as edge_key_id.
            identifier = ApigwApiKeyIdentifier(ACCOUNT_ID, REGION, key["value"])
            moto_id_manager.set_custom_id(identifier, key["id"])
            try:
                arguments: dict[str, Any] = {
                    "name": key.get("name") or key["id"],
                    "value": key["value"],
                    "enabled": bool(key.get("enabled")),
                    "description": key.get("description") or "",
                }
                if key.get("tags"):
                    arguments["tags"] = key["tags"]
                created = apigateway.create_api_key(**arguments)
            finally:
                moto_id_manager.unset_custom_id(identifier)
            for plan_name in key.get("usage_plans", []):
                if plan_name in plan_ids:
                    apigateway.create_usage_plan_key(
                        usagePlanId=plan_ids[plan_name], keyId=created["id"], keyType="API_KEY"
                    )

    @staticmethod
    def _restore_messages(sqs: Any, queues: dict[str, list[str]], urls: dict[str, str]) -> None:
        by_name = {template.local_queue_name(logical_id): url for logical_id, url in urls.items()}
        for name, bodies in queues.items():
            if name not in by_name:
                _log.warning(
                    "snapshot queue %s is no longer in template.yaml; %d messages dropped", name, len(bodies)
                )
                continue
            for body in bodies:
                sqs.send_message(QueueUrl=by_name[name], MessageBody=body)

    def _read_state(self) -> dict[str, Any]:
        if self.home is None:
            return {}
        path = self.home / STATE_FILE
        try:
            state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            broken = path.with_suffix(f".broken-{int(time.time())}.json")
            path.rename(broken)
            _log.warning("unreadable snapshot moved to %s; starting empty", broken)
            return {}
        return state

    def snapshot(self) -> Path | None:
        """Write the state to ``home/aws-state.json`` now (durably, atomically) and compact the
        journal; None without a home."""
        if self.home is None or self._app is None:
            return None
        with self._snapshot_lock:
            self._dirty.clear()
            with self._app.lock:
                state = _dump_moto_state(self.api_id)
                if self._journal is not None:
                    state["journal_seq"] = self._journal.rotate()
            path = self.home / STATE_FILE
            partial = path.with_suffix(".tmp")
            with partial.open("w", encoding="utf-8") as output:
                output.write(json.dumps(state, separators=(",", ":")))
                output.flush()
                os.fsync(output.fileno())
            partial.replace(path)
            journal.fsync_directory(self.home)
            if self._journal is not None:
                self._journal.discard_before_current()
            self._last_snapshot = time.monotonic()
            return path

    def _snapshot_loop(self) -> None:
        while not self._stopping.wait(SNAPSHOT_CHECK_SECONDS):
            due = time.monotonic() - self._last_snapshot >= SNAPSHOT_EVERY_SECONDS
            large = self._journal is not None and self._journal.size >= SNAPSHOT_JOURNAL_BYTES
            if self._dirty.is_set() and (due or large):
                try:
                    self.snapshot()
                except Exception:  # noqa: BLE001 - keep snapshotting; the journal holds the writes
                    _log.exception("snapshot failed")

    def _write_endpoint_file(self) -> None:
        assert self.home is not None
        info = {"endpoint_url": self.endpoint_url, "pid": os.getpid(), "api_id": self.api_id}
        (self.home / ENDPOINT_FILE).write_text(json.dumps(info), encoding="utf-8")


def _stable_id(name: str) -> str:
    """A 10-character lower-case id derived from ``name``, API Gateway's id shape."""
    import hashlib  # noqa: PLC0415

    digest = hashlib.sha256(name.encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:10])


def _convert_binary(item: dict[str, Any], convert: Callable[[Any], Any]) -> dict[str, Any]:
    """Apply ``convert`` to every B and BS value of a DynamoDB-JSON item, however deep."""

    def value(typed: dict[str, Any]) -> dict[str, Any]:
        (kind, inner), *_ = typed.items()
        if kind == "B":
            return {"B": convert(inner)}
        if kind == "BS":
            return {"BS": [convert(member) for member in inner]}
        if kind == "M":
            return {"M": {name: value(member) for name, member in inner.items()}}
        if kind == "L":
            return {"L": [value(member) for member in inner]}
        return typed

    return {name: value(typed) for name, typed in item.items()}


def _binary_out(item: dict[str, Any]) -> dict[str, Any]:
    """Binary values as base64 text, for the JSON snapshot."""
    return _convert_binary(
        item, lambda raw: base64.b64encode(raw).decode() if isinstance(raw, bytes | bytearray) else raw
    )


def _binary_in(item: dict[str, Any]) -> dict[str, Any]:
    """Base64 text back to bytes (boto3 encodes bytes on the wire itself)."""
    return _convert_binary(item, lambda text: base64.b64decode(text) if isinstance(text, str) else text)


def _moto_backends() -> tuple[Any, Any]:
    from moto.apigateway.models import apigateway_backends  # noqa: PLC0415
    from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415

    return dynamodb_backends[ACCOUNT_ID][REGION], apigateway_backends[ACCOUNT_ID][REGION]


def _key_of(table_name: str, item: dict[str, Any]) -> dict[str, Any] | None:
    """The primary key of ``item`` in moto's table ``table_name``; None if either is unknown."""
    dynamodb, _ = _moto_backends()
    table = dynamodb.tables.get(table_name)
    if table is None:
        return None
    names = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
    if not all(name in item for name in names):
        return None
    return {name: item[name] for name in names}


def _post_image(table_name: str, key: dict[str, Any]) -> dict[str, Any]:
    """The journal's change record for one item: its current attributes, or None once deleted."""
    dynamodb, _ = _moto_backends()
    current = dynamodb.get_item(table_name, key)
    item = _binary_out(current.to_json()["Attributes"]) if current is not None else None
    return {"table": table_name, "key": _binary_out(key), "item": item}


def _dump_moto_state(api_id: str) -> dict[str, Any]:
    """Read moto's models directly (the caller holds the request lock, so this is consistent)."""
    dynamodb, _ = _moto_backends()
    tables = {
        name: [_binary_out(item.to_json()["Attributes"]) for item in table.all_items()]
        for name, table in dynamodb.tables.items()
    }
    return {
        "version": 1,
        "saved_at": int(time.time()),
        "api_id": api_id,
        "dynamodb": tables,
        "api_keys": _dump_api_keys(),
        "usage_plans": _dump_runtime_plans(),
        "sqs": _dump_queues(),
    }


def _dump_queues() -> dict[str, list[str]]:
    """Every queue's message bodies, in flight ones included (the caller holds the request lock)."""
    from moto.sqs.models import sqs_backends  # noqa: PLC0415

    backend = sqs_backends[ACCOUNT_ID][REGION]
    return {name: [message.body for message in queue._messages] for name, queue in backend.queues.items()}


def _dump_api_keys() -> list[dict[str, Any]]:
    """Every API key with its id, value and plans (the caller holds the request lock)."""
    _, apigateway = _moto_backends()
    plan_names = {plan_id: plan.name for plan_id, plan in apigateway.usage_plans.items()}
    plans_of_key: dict[str, list[str]] = {}
    for plan_id, plan_keys in apigateway.usage_plan_keys.items():
        for key_id in plan_keys:
            if plan_id in plan_names:
                plans_of_key.setdefault(key_id, []).append(plan_names[plan_id])
    return [
        {
            "id": key.id,
            "name": key.name,
            "value": key.value,
            "enabled": bool(key.enabled),
            "description": key.description,
            "tags": key.tags,
            "usage_plans": sorted(plans_of_key.get(key.id, [])),
        }
        for key in apigateway.keys.values()
    ]


def _dump_runtime_plans() -> list[dict[str, Any]]:
    """The usage plans the template does not define (made at run time), with their ids, limits and
    tags (the caller holds the request lock)."""
    _, apigateway = _moto_backends()
    from_template = {definition["name"] for definition in template.usage_plan_definitions().values()}
    return [
        {
            "id": plan.id,
            "name": plan.name,
            "description": plan.description or "",
            "throttle": dict(plan.throttle or {}),
            "quota": dict(plan.quota or {}),
            "tags": dict(plan.tags or {}),
        }
        for plan in apigateway.usage_plans.values()
        if plan.name not in from_template
    ]


def _reset_moto_state() -> None:
    """Forget moto's in-memory backends so a later EmbeddedAws in this process starts clean."""
    with contextlib.suppress(Exception):
        dynamodb, apigateway = _moto_backends()
        dynamodb.reset()
        apigateway.reset()
    with contextlib.suppress(Exception):
        from moto.sqs.models import sqs_backends  # noqa: PLC0415

        sqs_backends[ACCOUNT_ID][REGION].reset()
