"""The API-key authorizer: X-API-Key → tenant, as an IAM policy API Gateway caches for 300 s.

Import-light on purpose (standard library, boto3 and :mod:`tenantry.keys` only): this code's cold
start is paid on every authorizer cache miss. No pydantic, no Powertools, no anthropic.

The answer is cached per key and reused for every route, so the policy covers everything the
key may call (its role's routes, narrowed by its scopes), never just the method that triggered it.

The usage identity (``usageIdentifierKey``) is the tenant's own API Gateway key, whose value the
key item carries (``usage_key``): every key of a tenant draws from one token bucket and one quota.
A key item from before usage identities (no ``usage_key``: its own API key has the presented
value) answers the presented key, as it always did, until ``tenantry keys migrate`` stamps it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from tenantry import caches, clientconfig, keys, routes

UNAUTHORIZED = "Unauthorized"  # API Gateway maps exactly this exception message to 401

KeyLookup = Callable[[str], "dict[str, str] | None"]

_log = logging.getLogger("tenantry.authorizer")
_log.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"))
if not _log.handlers:
    # One JSON object per line, like the Powertools functions, without Lambda's text prefix and
    # without passing through another logger's formatter (locally, Powertools owns "tenantry").
    _stdout = logging.StreamHandler(sys.stdout)
    _stdout.setFormatter(logging.Formatter("%(message)s"))
    _log.addHandler(_stdout)
_log.propagate = False
_clients: dict[str, Any] = {}


def _dynamodb() -> Any:
    if "dynamodb" not in _clients:
        import boto3  # noqa: PLC0415 - deferred so a malformed key never pays for boto3's import

        _clients["dynamodb"] = boto3.client("dynamodb", config=clientconfig.config(clientconfig.AUTHORIZER))
    return _clients["dynamodb"]


@caches.register
def _forget_client() -> None:
    _clients.clear()


# The key lookup's retries (botocore makes one attempt: clientconfig.AUTHORIZER). A throttled read
# is retried while the next attempt still fits: the function has 5 s (template.yaml), an attempt
# at most 1.5 s (its connect and read timeouts), so no attempt starts that could end after 4 s.
# Up to 4 attempts make a 20 % throttle rate fail 0.16 % of lookups (2 attempts: 4 %), each
# failure being API Gateway's 500. Timeouts and DynamoDB's 5xx get one retry, as before.
LOOKUP_BUDGET_SECONDS = 4.0
ATTEMPT_SECONDS = 1.5
THROTTLED_ATTEMPTS = 4
TRANSIENT_ATTEMPTS = 2
FIRST_PAUSE_SECONDS = 0.25  # full jitter, doubling: at most 0.25, 0.5, 1 s before attempts 2-4
_THROTTLING = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
_TRANSIENT_CODES = frozenset({"InternalServerError", "ServiceUnavailable", "RequestTimeout"})


def _attempts_for(exc: Exception) -> int:
    """How many attempts the lookup may make when an attempt failed with ``exc``."""
    from botocore import exceptions  # noqa: PLC0415 - loaded with boto3 already: free here

    if isinstance(exc, exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _THROTTLING:
            return THROTTLED_ATTEMPTS
        return TRANSIENT_ATTEMPTS if code in _TRANSIENT_CODES or 500 <= status <= 504 else 1
    if isinstance(exc, exceptions.ConnectionError | exceptions.HTTPClientError):
        return TRANSIENT_ATTEMPTS  # timeouts, refused or dropped connections
    return 1


# Module-level so tests can run the retries on a fake clock.
_clock: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep
_jitter: Callable[[], float] = random.random


def _get_item(params: dict[str, Any]) -> dict[str, Any]:
    started = _clock()
    attempt = 1
    while True:
        try:
            response: dict[str, Any] = _dynamodb().get_item(**params)
        except Exception as exc:
            if attempt >= _attempts_for(exc):
                raise
            pause = _jitter() * FIRST_PAUSE_SECONDS * 2 ** (attempt - 1)
            if _clock() - started + pause + ATTEMPT_SECONDS > LOOKUP_BUDGET_SECONDS:
                raise
            _sleep(pause)
            attempt += 1
        else:
            return response


def lookup_key(key_hash: str) -> dict[str, str] | None:
    """One consistent read by hash (retried as above); attribute values flattened to strings."""
    response = _get_item(
        {
            "TableName": os.environ["API_KEYS_TABLE"],
            "Key": {"key_hash": {"S": key_hash}},
            "ConsistentRead": True,
        }
    )
    item = response.get("Item")
    if item is None:
        return None
    return {
        name: next(iter(value.values())) for name, value in item.items() if ("S" in value or "N" in value)
    }


def _header(event: dict[str, Any], name: str) -> str | None:
    """The header's one value; None when it is missing, empty, or sent with different values.

    API Gateway puts only the last of repeated headers into ``headers``; ``multiValueHeaders``
    holds them all. Two different keys in one request must not authorize as whichever came last.
    """
    wanted = name.lower()
    values: set[str] = set()
    for header, many in (event.get("multiValueHeaders") or {}).items():
        if header.lower() == wanted:
            values.update(str(value) for value in many or [])
    for header, value in (event.get("headers") or {}).items():
        if header.lower() == wanted:
            values.add(str(value or ""))
    if len(values) != 1:
        return None
    value = values.pop()
    return value or None


def _stage_arn(method_arn: str) -> str:
    """``arn:…:apiId/stage/VERB/path`` → ``arn:…:apiId/stage``."""
    prefix, _, rest = method_arn.partition(":execute-api:")
    region_account_api = rest.split("/", 2)
    return f"{prefix}:execute-api:{region_account_api[0]}/{region_account_api[1]}"


def _statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources}


def policy_for(
    role: str, stage_arn: str, suspended: bool, scopes: frozenset[str] | None = None
) -> dict[str, Any]:
    """Every route the key may call, from the one role and scope table (tenantry.routes), as method
    ARNs. An admin key: its role's routes. A tenant key: every route behind the authorizer but the
    admin ones (explicitly denied); a key with scopes only the tenant routes its scopes allow, so
    API Gateway answers 403 to any other and no function runs."""
    admin_arns = [f"{stage_arn}/{routes.method_arn_pattern(route)}" for route in routes.routes_for("admin")]
    if suspended:
        statements = [_statement("Deny", [f"{stage_arn}/*/*"])]
    elif role == "admin":
        statements = [_statement("Allow", admin_arns)]
    elif scopes is None:
        statements = [_statement("Allow", [f"{stage_arn}/*/*"]), _statement("Deny", admin_arns)]
    else:
        allowed = [
            f"{stage_arn}/{routes.method_arn_pattern(route)}" for route in routes.tenant_routes_for(scopes)
        ]
        statements = [_statement("Allow", allowed), _statement("Deny", admin_arns)]
    return {"Version": "2012-10-17", "Statement": statements}


def _rfc3339(moment: float) -> str:
    milliseconds = int(moment * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{milliseconds:03d}+00:00"


def _log_decision(decision: str, reason: str, item: dict[str, str] | None = None) -> None:
    line: dict[str, str] = {
        "level": "INFO",
        "message": "authorizer decision",
        # As the Powertools functions write it (RFC 3339, milliseconds, UTC), so lines sort alike.
        "timestamp": _rfc3339(time.time()),
        "decision": decision,
        "reason": reason,
    }
    if item is not None:
        line.update(tenant_id=item.get("tenant_id", ""), key_id=item.get("key_id", ""))
    _log.info(json.dumps(line))


def authorize(
    event: dict[str, Any], *, lookup: KeyLookup = lookup_key, now: Callable[[], float] = time.time
) -> dict[str, Any]:
    """Answer a REQUEST authorizer event, or raise ``Exception("Unauthorized")`` for a 401."""
    presented = _header(event, "X-API-Key")
    if presented is None:
        _log_decision("unauthorized", "missing_key")
        raise Exception(UNAUTHORIZED)  # noqa: TRY002 - API Gateway's contract is this message
    role = keys.role_of(presented)
    if role is None:
        _log_decision("unauthorized", "malformed_key")
        raise Exception(UNAUTHORIZED)  # noqa: TRY002
    item = lookup(keys.hash_key(presented))
    if item is None:
        _log_decision("unauthorized", "unknown_key")
        raise Exception(UNAUTHORIZED)  # noqa: TRY002
    # Only a finished key is usable: revoked ones are not, nor a pending one (its issuing has not
    # answered yet, or failed half-way; its secret was never shown).
    if item.get("role") != role or item.get("status") not in ("active", "suspended"):
        _log_decision("unauthorized", "revoked_key", item)
        raise Exception(UNAUTHORIZED)  # noqa: TRY002
    expires_at = item.get("expires_at")
    if expires_at is not None and float(expires_at) <= now():
        _log_decision("unauthorized", "expired_key", item)
        raise Exception(UNAUTHORIZED)  # noqa: TRY002

    suspended = item.get("status") == "suspended"
    _log_decision("deny" if suspended else "allow", "suspended" if suspended else "valid_key", item)
    scopes = routes.scopes_from_text(item.get("scopes"))
    return {
        "principalId": item["tenant_id"],
        "policyDocument": policy_for(role, _stage_arn(event["methodArn"]), suspended, scopes),
        "context": {
            "tenant_id": item["tenant_id"],
            "tier": item.get("tier", ""),
            "role": role,
            "key_id": item.get("key_id", ""),
            # The tenant's incarnation: the functions' writes condition on it (offboarding).
            "incarnation": item.get("incarnation", ""),
            # When the key stops (a rotation's grace end, or its own expiry): API Gateway keeps this
            # answer for 300 s, so the functions refuse the key themselves once it has passed.
            "expires_at": item.get("expires_at", ""),
            # The error code of API Gateway's 403 when this policy denies a route (template.yaml's
            # ACCESS_DENIED gateway response reads it): a suspended tenant's keys say so.
            "denial": "tenant_suspended" if suspended else "access_denied",
            # What the key may call ("" = everything its role may): the functions check it again.
            "scopes": routes.scopes_as_text(scopes),
        },
        # The tenant's usage identity; a key item from before them keeps its own (its value).
        "usageIdentifierKey": item.get("usage_key") or presented,
    }
