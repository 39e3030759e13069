"""Fault injection for the local stack and the unit tests: AWS's failure modes, on purpose.

The embedded moto (and moto in process) never cancels a transaction for a conflict, never
throttles, never serves a stale index and never fails a parameter read, so the code paths that
production hits were untested. A :class:`FaultSpec` says which faults to inject, by operation and
rate, and a seeded :class:`FaultInjector` decides per request and renders the error exactly as the
service sends it on the wire, so botocore parses it (and retries it, or not) as it would on AWS.

Two ways in, one decision code:

- :class:`FaultMiddleware` wraps the embedded server's WSGI app (``make dev FAULTS=…``); it decides
  from the request (``X-Amz-Target`` or the API Gateway path) before the request reaches moto.
- :func:`activate` switches the same injector on for moto in process (unit tests): the front door
  of ``local/inprocess.py`` (botocore's ``before-send``) asks it before moto sees the request.

The spec's grammar (comma-separated; a rate is ``0.2`` or ``20%``; ``@Op`` restricts a rule to
operations matching a glob, e.g. ``throttle@Query``):

=========================  ======================================================================
``conflict=RATE``          DynamoDB ``TransactWriteItems`` → ``TransactionCanceledException`` with
                           a ``TransactionConflict`` reason on one item (botocore does not retry).
``throttle=RATE``          any DynamoDB operation → ``ProvisionedThroughputExceededException`` or
                           ``ThrottlingException`` (a transaction may instead be cancelled with a
                           ``ThrottlingError`` reason, as DynamoDB does).
``gsi-lag=SECONDS``        index queries and scans (eventually consistent) miss items written in
                           the last SECONDS, as a lagging GSI does.
``ssm=CODE[:RATE]``        SSM → that error, e.g. ``ssm=AccessDeniedException``,
                           ``ssm=ThrottlingException:50%``, ``ssm=ParameterNotFound``.
``apigw=RATE``             API Gateway key management (API keys, usage-plan keys) → 429
                           ``TooManyRequestsException``.
``model-delay=SECONDS[:RATE]``  the fake Messages API answers only after SECONDS (``model-hang``
                           is a delay of an hour).
``seed=N``                 the random sequence (default 0): the same spec and the same order of
                           requests give the same faults.
=========================  ======================================================================

Without a spec (``FAULTS`` unset or empty) nothing is wrapped and nothing changes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from local.wire import (
    APIGATEWAY,
    DYNAMODB,
    SSM,
    Answer,
    call,
    json_error,
    read_body,
    respond,
    transaction_cancelled,
)

ENV_VAR = "FAULTS"
MODEL = "model"
HANG_SECONDS = 3600.0

# The rule kinds: the service each applies to and the operations it matches when no @Op is given.
_DEFAULT_OPERATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "conflict": (DYNAMODB, ("TransactWriteItems",)),
    "throttle": (DYNAMODB, ("*",)),
    "gsi-lag": (DYNAMODB, ("Query", "Scan")),
    "ssm": (SSM, ("*",)),
    "apigw": (
        APIGATEWAY,
        ("CreateApiKey", "UpdateApiKey", "DeleteApiKey", "CreateUsagePlanKey", "DeleteUsagePlanKey"),
    ),
    "model-delay": (MODEL, ("*",)),
}
_DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# Method and path of the API Gateway REST calls the project makes → the operation's name.
_APIGATEWAY_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), name)
    for method, pattern, name in (
        ("POST", r"^/apikeys/?$", "CreateApiKey"),
        ("GET", r"^/apikeys/?$", "GetApiKeys"),
        ("GET", r"^/apikeys/[^/]+/?$", "GetApiKey"),
        ("PATCH", r"^/apikeys/[^/]+/?$", "UpdateApiKey"),
        ("DELETE", r"^/apikeys/[^/]+/?$", "DeleteApiKey"),
        ("POST", r"^/usageplans/[^/]+/keys/?$", "CreateUsagePlanKey"),
        ("GET", r"^/usageplans/[^/]+/keys/?$", "GetUsagePlanKeys"),
        ("DELETE", r"^/usageplans/[^/]+/keys/[^/]+/?$", "DeleteUsagePlanKey"),
        ("GET", r"^/usageplans/?$", "GetUsagePlans"),
        ("PATCH", r"^/usageplans/[^/]+/?$", "UpdateUsagePlan"),
        ("DELETE", r"^/restapis/[^/]+/stages/[^/]+/cache/authorizers/?$", "FlushStageAuthorizersCache"),
    )
)
_BOTOCORE_SERVICES = {"dynamodb": DYNAMODB, "ssm": SSM, "api-gateway": APIGATEWAY}


class FaultSpecError(ValueError):
    """The FAULTS text does not parse; the message names the offending item."""


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    service: str
    operations: tuple[str, ...]
    rate: float = 1.0
    code: str = ""
    seconds: float = 0.0

    def matches(self, service: str, operation: str) -> bool:
        return service == self.service and any(
            fnmatch.fnmatchcase(operation, glob) for glob in self.operations
        )


def _rate(text: str, item: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise FaultSpecError(f"{item!r}: {text!r} is not a rate (0.2 or 20%)") from None
    if not 0 <= value <= 1:
        raise FaultSpecError(f"{item!r}: a rate is between 0 and 1 (0% and 100%)")
    return value


def _seconds(text: str, item: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise FaultSpecError(f"{item!r}: {text!r} is not a number of seconds") from None
    if value < 0:
        raise FaultSpecError(f"{item!r}: seconds cannot be negative")
    return value


@dataclass(frozen=True, slots=True)
class FaultSpec:
    rules: tuple[Rule, ...] = ()
    seed: int = 0
    text: str = ""

    def __bool__(self) -> bool:
        return bool(self.rules)

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """Parse the FAULTS grammar (see the module's docstring); empty text is no faults."""
        rules: list[Rule] = []
        seed = 0
        for raw in re.split(r"[,\s]+", (text or "").strip()):
            item = raw.strip()
            if not item:
                continue
            name, _, value = item.partition("=")
            name, _, operation = name.partition("@")
            name = name.strip().lower()
            if name == "seed":
                try:
                    seed = int(value)
                except ValueError:
                    raise FaultSpecError(f"{item!r}: the seed is an integer") from None
                continue
            if name == "model-hang":
                name, value = "model-delay", f"{HANG_SECONDS}{':' + value if value else ''}"
            if name not in _DEFAULT_OPERATIONS:
                known = ", ".join(sorted([*_DEFAULT_OPERATIONS, "model-hang", "seed"]))
                raise FaultSpecError(f"{item!r}: unknown fault {name!r} (known: {known})")
            if not value:
                raise FaultSpecError(f"{item!r}: give a value, e.g. {name}=20%")
            service, defaults = _DEFAULT_OPERATIONS[name]
            operations = (operation,) if operation else defaults
            if name in ("conflict", "throttle", "apigw"):
                rules.append(Rule(name, service, operations, rate=_rate(value, item)))
            elif name == "gsi-lag":
                rules.append(Rule(name, service, operations, seconds=_seconds(value, item)))
            elif name == "ssm":
                code, _, rate = value.partition(":")
                if not re.fullmatch(r"[A-Za-z]+", code):
                    raise FaultSpecError(f"{item!r}: ssm takes an error code, e.g. ssm=AccessDeniedException")
                rules.append(Rule(name, service, operations, rate=_rate(rate or "1", item), code=code))
            else:  # model-delay
                seconds, _, rate = value.partition(":")
                rules.append(
                    Rule(
                        name,
                        service,
                        operations,
                        rate=_rate(rate or "1", item),
                        seconds=_seconds(seconds, item),
                    )
                )
        return cls(tuple(rules), seed, (text or "").strip())


@dataclass(frozen=True, slots=True)
class Injected:
    """A fault's answer, as the service would send it on the wire."""

    status: int
    code: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    # The request still reaches the service, which acts on it; only its answer is this error (a
    # timeout after the service did the work, as the caller sees it).
    applied: bool = False


def _json_error(service: str, code: str, message: str, status: int = 400, **extra: Any) -> Injected:
    answer = json_error(service, code, message, status, **extra)
    return Injected(answer.status, code, answer.headers, answer.body)


def _cancelled(items: int, victim: int, reason: str, message: str) -> Injected:
    """TransactionCanceledException with one reason per item, ``None`` for the untouched ones."""
    reasons: list[dict[str, str]] = [{"Code": "None"} for _ in range(max(items, 1))]
    reasons[victim] = {"Code": reason, "Message": message}
    answer = transaction_cancelled(reasons)
    return Injected(answer.status, reason, answer.headers, answer.body)  # counted by its reason


def _moto_key_schema(table_name: str) -> tuple[str, ...]:
    """The key attributes of a table of moto's (the embedded server's or moto in process)."""
    from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415 - moto is heavy to import

    for regions in dynamodb_backends.values():
        for backend in regions.values():
            table = backend.tables.get(table_name)
            if table is not None:
                return tuple(name for name in (table.hash_key_attr, table.range_key_attr) if name)
    return ()


@dataclass
class FaultInjector:
    """Seeded decisions for a :class:`FaultSpec`, a log of recent writes (for lagging indexes) and
    counters of what was injected (tests and the bench read them)."""

    spec: FaultSpec
    key_schema: Callable[[str], tuple[str, ...]] = _moto_key_schema
    clock: Callable[[], float] = time.monotonic
    injected: Counter[str] = field(default_factory=Counter)
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _written: dict[tuple[str, str], float] = field(default_factory=dict)
    _schemas: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _once: list[tuple[str, str, str, int, bool]] = field(default_factory=list)
    # Every (service, operation) decided on, in order, when ``tracing`` (tests enumerate steps).
    trace: list[tuple[str, str]] = field(default_factory=list)
    tracing: bool = False

    def __post_init__(self) -> None:
        self._random = random.Random(self.spec.seed)  # noqa: S311 - reproducible faults, not secrets

    # ------------------------------------------------------------------ decisions
    def _roll(self, rate: float) -> float | None:
        """A draw under ``rate`` (the draw itself, for further seeded choices), else None."""
        if rate <= 0:
            return None
        draw = self._random.random()
        return draw if draw < rate else None

    def fail_once(
        self, service: str, operation: str, code: str, *, skip: int = 0, applied: bool = False
    ) -> None:
        """A matching call fails with ``code``: the next one, or the one after ``skip`` matching
        calls (tests that break one step of a workflow). ``applied``: the service still does the
        work and only the answer is lost (botocore then sends a retryable error again, as after a
        timeout, and meets the state the first send left)."""
        with self._lock:
            self._once.append((service, operation, code, skip, applied))

    def decide(self, service: str, operation: str, body: bytes | None) -> Injected | None:
        """The fault to answer this request with, or None to let it through."""
        with self._lock:
            if self.tracing:
                self.trace.append((service, operation))
            for index, (once_service, once_operation, code, skip, applied) in enumerate(self._once):
                if once_service == service and fnmatch.fnmatchcase(operation, once_operation):
                    if skip:
                        self._once[index] = (once_service, once_operation, code, skip - 1, applied)
                        continue
                    del self._once[index]
                    self.injected[f"{service}:{operation}:{code}"] += 1
                    error = self._error(service, code, body)
                    return Injected(error.status, error.code, error.headers, error.body, applied=applied)
            for rule in self.spec.rules:
                if rule.kind in ("gsi-lag", "model-delay") or not rule.matches(service, operation):
                    continue
                draw = self._roll(rule.rate)
                if draw is None:
                    continue
                fault = self._render(rule, operation, body, draw / rule.rate)
                self.injected[f"{service}:{operation}:{fault.code}"] += 1
                return fault
        return None

    def model_delay(self) -> float:
        """Seconds the fake model endpoint waits before answering (0: no fault)."""
        with self._lock:
            for rule in self.spec.rules:
                if rule.kind == "model-delay" and self._roll(rule.rate) is not None:
                    self.injected[f"model:delay:{rule.seconds:g}"] += 1
                    return rule.seconds
        return 0.0

    def _error(self, service: str, code: str, body: bytes | None) -> Injected:
        if code == "TransactionConflict":
            return _cancelled(_transaction_size(body), 0, code, "Transaction is ongoing for the item")
        if service == APIGATEWAY:
            status = {
                "TooManyRequestsException": 429,
                "LimitExceededException": 429,
                "NotFoundException": 404,
                "BadRequestException": 400,
                "AccessDeniedException": 403,
            }.get(code, 500)
            return _json_error(service, code, code, status)
        status = 500 if code in ("InternalServerError", "InternalFailure", "ServiceUnavailable") else 400
        return _json_error(service, code, f"injected {code}", status)

    def _render(self, rule: Rule, operation: str, body: bytes | None, choice: float) -> Injected:
        if rule.kind == "conflict":
            items = _transaction_size(body)
            victim = min(items - 1, int(choice * items)) if items else 0
            return _cancelled(items, victim, "TransactionConflict", "Transaction is ongoing for the item")
        if rule.kind == "throttle":
            if operation == "TransactWriteItems" and choice < 1 / 3:
                items = _transaction_size(body)
                victim = min(items - 1, int(choice * 3 * items)) if items else 0
                return _cancelled(items, victim, "ThrottlingError", "Throughput exceeds the current capacity")
            if choice < 2 / 3:
                return _json_error(
                    DYNAMODB,
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded. "
                    "Consider increasing your provisioning level with the UpdateTable API.",
                )
            return _json_error(DYNAMODB, "ThrottlingException", "Throughput exceeds the current capacity")
        if rule.kind == "apigw":
            return _json_error(APIGATEWAY, "TooManyRequestsException", "Too Many Requests", 429)
        return _json_error(SSM, rule.code, f"injected {rule.code}", 400)

    # ------------------------------------------------------------------ lagging indexes
    def _lag(self) -> float:
        return max((rule.seconds for rule in self.spec.rules if rule.kind == "gsi-lag"), default=0.0)

    def _schema(self, table: str) -> tuple[str, ...]:
        schema = self._schemas.get(table)
        if schema is None:
            schema = self._schemas[table] = self.key_schema(table)
        return schema

    def _identity(self, table: str, item: dict[str, Any]) -> str | None:
        schema = self._schema(table)
        if not schema or any(name not in item for name in schema):
            return None
        # Key values typed ({"S": "x"}) on the wire, plain ("x", Decimal) once boto3's resource
        # layer has deserialized an answer: the same identity either way.
        return json.dumps([_plain_key(item[name]) for name in schema])

    def observe_write(self, operation: str, body: bytes | None) -> None:
        """Remember when each item was written (a successful DynamoDB write), for ``gsi-lag``."""
        if self._lag() <= 0 or operation not in _DYNAMODB_WRITES or not body:
            return
        request = json.loads(body)
        touched: list[tuple[str, dict[str, Any]]] = []
        if operation == "PutItem":
            touched.append((request["TableName"], request["Item"]))
        elif operation in ("UpdateItem", "DeleteItem"):
            touched.append((request["TableName"], request["Key"]))
        elif operation == "BatchWriteItem":
            for table, entries in request.get("RequestItems", {}).items():
                for entry in entries:
                    if "PutRequest" in entry:
                        touched.append((table, entry["PutRequest"]["Item"]))
                    elif "DeleteRequest" in entry:
                        touched.append((table, entry["DeleteRequest"]["Key"]))
        else:
            for entry in request.get("TransactItems", []):
                for kind, operation_body in entry.items():
                    if kind != "ConditionCheck":
                        touched.append(
                            (operation_body["TableName"], operation_body.get("Key") or operation_body["Item"])
                        )
        now = self.clock()
        with self._lock:
            for table, item in touched:
                identity = self._identity(table, item)
                if identity is not None:
                    self._written[(table, identity)] = now

    def stale_view(self, operation: str, body: bytes | None, answer: dict[str, Any]) -> dict[str, Any]:
        """The answer of an index read as a lagging index gives it: without recent writes."""
        lag = self._lag()
        if lag <= 0 or operation not in ("Query", "Scan") or not body:
            return answer
        request = json.loads(body)
        if not request.get("IndexName") or request.get("ConsistentRead") or "Items" not in answer:
            return answer
        table = request["TableName"]
        horizon = self.clock() - lag
        with self._lock:
            self._written = {key: moment for key, moment in self._written.items() if moment > horizon}
            kept = [
                item
                for item in answer["Items"]
                if (table, self._identity(table, item) or "") not in self._written
            ]
            self.injected["dynamodb:" + operation + ":stale"] += len(answer["Items"]) - len(kept)
        return {**answer, "Items": kept, "Count": len(kept)}


def _plain_key(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        (kind, inner), *_ = value.items()
        if kind in ("S", "N", "B"):
            return str(inner)
    return str(value)


def _transaction_size(body: bytes | None) -> int:
    with contextlib.suppress(ValueError, TypeError):
        return len(json.loads(body or b"{}").get("TransactItems", []))
    return 1


def operation_of(environ: dict[str, Any]) -> tuple[str, str]:
    """(service, operation) of a WSGI request to the embedded server, or ("", "")."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        prefix, _, operation = target.rpartition(".")
        if prefix.startswith("DynamoDB"):
            return DYNAMODB, operation
        if prefix == "AmazonSSM":
            return SSM, operation
        return prefix, operation
    method = str(environ.get("REQUEST_METHOD", "GET"))
    path = str(environ.get("PATH_INFO", ""))
    for route_method, pattern, name in _APIGATEWAY_ROUTES:
        if method == route_method and pattern.match(path):
            return APIGATEWAY, name
    return "", ""


class FaultMiddleware:
    """WSGI middleware around the embedded server's app: injects faults before the request reaches
    moto (and its lock), records successful writes and ages index reads for ``gsi-lag``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], injector: FaultInjector) -> None:
        self._app = app
        self.injector = injector
        self.active = False  # the owner switches it on once its own setup calls are done

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        service, operation = operation_of(environ)
        if not service or not self.active:
            return self._app(environ, start_response)
        body = read_body(environ)
        fault = self.injector.decide(service, operation, body)
        if fault is not None:
            if fault.applied:
                call(self._app, environ)  # the service does the work; the caller sees the fault
            return respond(start_response, Answer(fault.status, fault.headers, fault.body))
        if service != DYNAMODB:
            return self._app(environ, start_response)
        answer = call(self._app, environ)
        if answer.status == 200:
            self.injector.observe_write(operation, body)
            if operation in ("Query", "Scan"):
                aged = self.injector.stale_view(operation, body, answer.json())
                answer = Answer(answer.status, answer.headers, json.dumps(aged).encode())
        return respond(start_response, answer)


def wrap(app: Callable[..., Iterable[bytes]], spec: FaultSpec | None) -> Callable[..., Iterable[bytes]]:
    """``app`` behind a :class:`FaultMiddleware` when ``spec`` has rules; ``app`` itself otherwise."""
    return FaultMiddleware(app, FaultInjector(spec)) if spec else app


# ---------------------------------------------------------------------- botocore (moto in process)
_active: FaultInjector | None = None
_CONTEXT_KEY = "tenantry_faults_body"


def service_operation(event_name: str) -> tuple[str, str]:
    parts = event_name.split(".")
    return (_BOTOCORE_SERVICES.get(parts[1], parts[1]), parts[2]) if len(parts) >= 3 else ("", "")


def _before_call(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if _active is not None:
        body = params.get("body")
        context[_CONTEXT_KEY] = body if isinstance(body, bytes) else str(body or "").encode()


def _after_call(
    http_response: Any, parsed: dict[str, Any], context: dict[str, Any], event_name: str = "", **_: Any
) -> None:
    injector = _active
    if injector is None or getattr(http_response, "status_code", 500) != 200:
        return
    service, operation = service_operation(event_name)
    if service != DYNAMODB:
        return
    body = context.get(_CONTEXT_KEY)
    injector.observe_write(operation, body)
    if operation in ("Query", "Scan"):
        aged = injector.stale_view(operation, body, parsed)
        parsed["Items"], parsed["Count"] = aged.get("Items", []), aged.get("Count", 0)


def _install_botocore_handlers() -> None:
    """Register the lagging-index handlers on every botocore session created from now on; the
    faults themselves answer in ``local/inprocess.py``'s ``before-send``. Inactive until
    :func:`activate`."""
    from botocore import handlers  # noqa: PLC0415

    if any(spec[1] is _before_call for spec in handlers.BUILTIN_HANDLERS):
        return
    handlers.BUILTIN_HANDLERS[:0] = [
        ("before-call", _before_call, handlers.REGISTER_FIRST),
        ("after-call", _after_call, handlers.REGISTER_FIRST),
    ]


def current() -> FaultInjector | None:
    """The injector :func:`activate` switched on in this process, if any (fakes consult it)."""
    return _active


@contextlib.contextmanager
def activate(spec: FaultSpec | str) -> Iterator[FaultInjector]:
    """Inject ``spec``'s faults into every boto3 call of this process (clients created after this
    module was imported), for the duration of the ``with``."""
    global _active  # noqa: PLW0603 - one process-wide switch, as botocore's handlers are global
    from local import inprocess  # noqa: PLC0415 - inprocess reads this module's switch

    _install_botocore_handlers()
    inprocess.install()
    injector = FaultInjector(spec if isinstance(spec, FaultSpec) else FaultSpec.parse(spec))
    previous, _active = _active, injector
    try:
        yield injector
    finally:
        _active = previous


_install_botocore_handlers()
