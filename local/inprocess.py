"""Moto in process (the unit tests' ``mock_aws``) with what the embedded server adds in front of moto:
injected faults and the rules moto leaves out, on botocore's ``before-send`` event.

The embedded server puts WSGI middleware in front of moto's app; in process, moto answers from its
own ``before-send`` handler (``moto.core.models.botocore_stubber``, registered with botocore's
built-in handlers). This module's handler is registered first and plays the same chain:

1. a fault decided for the request (``local.faults``) answers in the service's place;
2. otherwise the service answers: the rules (``local.dynamodb_rules``, ``local.apigateway_rules``)
   and, behind them, moto's stub, called here;
3. an "applied" fault (the service acted, the answer was lost) answers after the service ran.

botocore asks every ``before-send`` handler and keeps the first answer, so moto's own stub would
still run a request answered here (a second write, or a write a fault said never happened). An
answered request is therefore re-addressed to a reserved host (RFC 6761's ``.invalid``) that no
moto backend claims: moto's stub passes it by, as it passes by any URL that is not AWS's. botocore
builds a new request for every retry, so nothing else sees the changed address.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from local import apigateway_rules, dynamodb_rules, faults
from local.wire import APIGATEWAY, DYNAMODB, Answer, from_botocore, signature, to_botocore

ANSWERED_URL = "https://answered.tenantry.invalid/"

_installed = threading.Lock()


def answered(request: Any) -> bool:
    """Whether a ``before-send`` handler of this module answered ``request`` already."""
    return str(getattr(request, "url", "")) == ANSWERED_URL


def _moto(event_name: str, request: Any) -> Answer | None:
    from moto.core.models import botocore_stubber  # noqa: PLC0415 - moto is heavy to import

    response = botocore_stubber(event_name, request)
    return None if response is None else from_botocore(response)


def _body(request: Any) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    data = body.read()
    if hasattr(body, "seek"):
        body.seek(0)
    return data.encode() if isinstance(data, str) else bytes(data)


def _service(service: str, operation: str, event_name: str, request: Any, body: bytes) -> Answer | None:
    """The service's own answer: the rules moto leaves out, else moto's."""

    def run() -> Answer:
        found = _moto(event_name, request)
        if found is None:
            raise LookupError(request.url)
        return found

    def forward(changed: bytes) -> Answer:
        """Moto's answer to the request with ``changed`` as its body (a rule may send less)."""
        if changed != body:
            request.body = changed
            request.headers["Content-Length"] = str(len(changed))
        return run()

    try:
        if service == DYNAMODB:
            signed = signature(request.headers.get("Authorization"))
            return dynamodb_rules.serve(operation, signed.region if signed else "", body, run)
        if service == APIGATEWAY:
            return apigateway_rules.serve(request.method, urlsplit(request.url).path, body, forward)
    except LookupError:
        return None  # not an endpoint moto serves
    return _moto(event_name, request)


def front_door(request: Any, event_name: str = "", **_: Any) -> Any:
    """botocore ``before-send``: the answer of moto in process, with faults and rules applied."""
    from moto.core.models import botocore_stubber  # noqa: PLC0415

    if not botocore_stubber.enabled or answered(request):
        return None
    service, operation = faults.service_operation(event_name)
    body = _body(request)
    injector = faults.current()
    fault = injector.decide(service, operation, body) if injector is not None else None
    answer = None
    if fault is None or fault.applied:
        answer = _service(service, operation, event_name, request, body)
        if answer is None:
            return None  # not a request moto serves
    if fault is not None:
        answer = Answer(fault.status, fault.headers, fault.body)
    assert answer is not None
    response = to_botocore(request.url, answer)
    request.url = ANSWERED_URL
    return response


def install() -> None:
    """Put :func:`front_door` first on every botocore session created from now on (and on boto3's
    default session if it exists): before moto's stub, which it calls itself."""
    import boto3  # noqa: PLC0415
    from botocore import handlers  # noqa: PLC0415

    with _installed:
        if any(spec[1] is front_door for spec in handlers.BUILTIN_HANDLERS):
            return
        handlers.BUILTIN_HANDLERS.insert(0, ("before-send", front_door, handlers.REGISTER_FIRST))
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.register_first("before-send", front_door)
