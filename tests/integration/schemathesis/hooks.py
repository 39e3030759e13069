"""Schemathesis hooks for Tenantry's run (loaded through schemathesis.toml's ``hooks``): unique
idempotency keys, subscriptions that end, and the key of the role each route needs.

A subscription (``GET /events/stream``) stays open up to 15 minutes by design, which would hang
the fuzzer: every call of it gets a ``max_seconds`` of at most 2 (added when absent, lowered when
larger), so it ends with its ``end`` event and schemathesis checks the whole stream. A value that
already breaks the schema is left alone, so negative cases stay negative.

A publish with an Idempotency-Key holds at most 98 events (its receipt is the transaction's 100th
item), which the document says in words but JSON Schema cannot tie to a header: a generated batch
of 99 goes without its key, so the checks never judge the API by a rule its schema cannot state.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

import schemathesis

from tenantry import events, routes

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,222}$")


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]
) -> None:
    """A unique Idempotency-Key per request, in every phase. Generated keys collide ("0" comes up
    often), and a key reused with another body is rightly refused (422, as the IETF
    Idempotency-Key draft says), which the checks would take for a valid request refused. A key
    that already breaks the pattern is left alone, so negative cases stay negative."""
    _bounded_subscription(case)
    batch = case.body.get("events") if isinstance(case.body, dict) else None
    too_many_for_a_key = isinstance(batch, list) and len(batch) > events.MAX_KEYED_BATCH
    for name, value in list((case.headers or {}).items()):
        if (
            name.lower() != "idempotency-key"
            or not isinstance(value, str)
            or not _IDEMPOTENCY_KEY.match(value)
        ):
            continue
        if too_many_for_a_key:
            del case.headers[name]
        else:
            case.headers[name] = f"{value}-{uuid.uuid4().hex}"


SUBSCRIPTION_SECONDS = 2


def _number(value: Any) -> float | None:
    """A query value as the API reads an integer (the text of a JSON number), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return _number(json.loads(value))
        except ValueError:
            return None
    return None


def _bounded_subscription(case: schemathesis.Case[Any]) -> None:
    if case.operation.method.upper() != "GET" or case.operation.path != "/events/stream":
        return
    query = case.query if isinstance(case.query, dict) else {}
    value = query.get("max_seconds")
    seconds = _number(value)
    if value is None or (seconds is not None and seconds.is_integer() and seconds > SUBSCRIPTION_SECONDS):
        query["max_seconds"] = SUBSCRIPTION_SECONDS
    case.query = query


@schemathesis.auth()
class RoleKeys:
    """The document's ApiKey scheme: the admin key on admin routes, the tenant key elsewhere.
    As an auth provider (not a fixed header), the auth checks can leave it out and expect 401.
    Schemathesis caches what ``get`` returns across operations, so ``set`` picks the key."""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> dict[str, str]:
        return {"admin": os.environ["ST_ADMIN_KEY"], "tenant": os.environ["ST_TENANT_KEY"]}

    def set(
        self, case: schemathesis.Case[Any], data: dict[str, str], context: schemathesis.AuthContext
    ) -> None:
        if case.headers is None:
            case.headers = {}
        role = routes.role_of(case.operation.method, case.operation.path)
        case.headers["X-API-Key"] = data["admin" if role == routes.ADMIN else "tenant"]
