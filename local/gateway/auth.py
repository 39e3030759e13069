"""The authorizer step of the local gateway: identity sources, the result cache, invoking the
authorizer function, IAM policy checks.

API Gateway caches an authorizer's answer for ``ReauthorizeEvery`` seconds under the identity
source values, and re-checks the cached policy against every later request's method ARN. That is
what makes one cached policy serve every route a role may call, and what makes a revoked key live
on until the cache is flushed. Both behaviours are reproduced here, and ``authorize`` runs the
whole step for one request, answering the 401, 403 or 500 API Gateway would.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from local.gateway.api import AuthorizerSpec
from local.gateway.responses import (
    AUTHORIZER_FAILURE,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    UNAUTHORIZED,
    GatewayAnswer,
)

if TYPE_CHECKING:
    from local.gateway.api import ApiModel, Route
    from local.gateway.exchange import Exchange
    from local.gateway.proxyevent import ProxyEvents
    from local.gateway.server import HttpRequest

from local.gateway.sandbox import FunctionError, FunctionPool

_log = logging.getLogger("tenantry.local.gateway")

Decision = Literal["allow", "explicit_deny", "implicit_deny"]


class AuthorizerFailedError(Exception):
    """The authorizer crashed or answered something API Gateway cannot use (a 500)."""


class UnauthorizedError(Exception):
    """The authorizer raised ``Exception("Unauthorized")`` (a 401)."""


@dataclass(frozen=True)
class AuthorizerResult:
    principal_id: str
    policy_document: dict[str, Any]
    context: dict[str, str]
    usage_identifier_key: str | None

    @classmethod
    def parse(cls, answer: Any) -> AuthorizerResult:
        """Validate an authorizer's return value the way API Gateway does."""
        if not isinstance(answer, dict):
            raise AuthorizerFailedError("the authorizer returned no object")
        policy = answer.get("policyDocument")
        principal = answer.get("principalId")
        if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), list):
            raise AuthorizerFailedError("the authorizer returned no policyDocument with a Statement list")
        if not isinstance(principal, str | int):
            raise AuthorizerFailedError("the authorizer returned no principalId")
        raw_context = answer.get("context") or {}
        if not isinstance(raw_context, dict):
            raise AuthorizerFailedError("the authorizer's context is not an object")
        context: dict[str, str] = {}
        for name, value in raw_context.items():
            # API Gateway accepts only string, number and boolean context values.
            if isinstance(value, dict | list) or value is None:
                raise AuthorizerFailedError(f"the authorizer's context value {name!r} is not a scalar")
            context[str(name)] = str(value).lower() if isinstance(value, bool) else str(value)
        usage_key = answer.get("usageIdentifierKey")
        return cls(str(principal), policy, context, str(usage_key) if usage_key else None)

    def decide(self, method_arn: str) -> Decision:
        """IAM evaluation for ``execute-api:Invoke`` on ``method_arn``: an explicit Deny wins."""
        allowed = False
        for statement in self.policy_document.get("Statement", []):
            if not isinstance(statement, dict) or not _matches_action(statement.get("Action")):
                continue
            resources = statement.get("Resource", [])
            resources = [resources] if isinstance(resources, str) else resources
            if not any(_glob(str(resource)).fullmatch(method_arn) for resource in resources):
                continue
            effect = str(statement.get("Effect", ""))
            if effect == "Deny":
                return "explicit_deny"
            if effect == "Allow":
                allowed = True
        return "allow" if allowed else "implicit_deny"


def _matches_action(action: Any) -> bool:
    actions = [action] if isinstance(action, str) else list(action or [])
    return any(_glob(str(candidate)).fullmatch("execute-api:Invoke") for candidate in actions)


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """IAM wildcards: ``*`` any run of characters (slashes included), ``?`` one character."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


class AuthorizerCache:
    """Authorizer answers by (authorizer, identity values) with a TTL; flushable per stage."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, tuple[str, ...]], tuple[float, AuthorizerResult]] = {}
        self._lock = threading.Lock()

    def get(self, authorizer: str, identity: tuple[str, ...]) -> AuthorizerResult | None:
        key = (authorizer, identity)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, result = entry
        if self._clock() >= expires_at:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return result

    def put(self, authorizer: str, identity: tuple[str, ...], result: AuthorizerResult, ttl: int) -> None:
        if ttl <= 0:
            return  # ReauthorizeEvery: 0 turns caching off
        with self._lock:
            self._entries[(authorizer, identity)] = (self._clock() + ttl, result)

    def flush(self) -> int:
        with self._lock:
            flushed = len(self._entries)
            self._entries.clear()
        return flushed

    def __len__(self) -> int:
        return len(self._entries)


def identity_values(
    spec: AuthorizerSpec, headers: dict[str, str], query: dict[str, str]
) -> tuple[str, ...] | None:
    """The identity source values in order, or None when one is missing or empty (a 401, no call)."""
    values: list[str] = []
    for header in spec.identity_headers:
        value = headers.get(header.lower(), "")
        if not value:
            return None
        values.append(value)
    for name in spec.identity_query:
        value = query.get(name, "")
        if not value:
            return None
        values.append(value)
    return tuple(values)


def identity_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Header values by lower-case name; a header sent more than once with different values
    keeps them all (comma-joined), so the authorizer cache never takes a request with two keys
    for the request with the last one. The authorizer sees every value in multiValueHeaders."""
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        values = merged.setdefault(name.lower(), [])
        if value not in values:
            values.append(value)
    return {name: ",".join(values) for name, values in merged.items()}


class NeedsInvocation(Exception):
    """The authorizer's answer is not cached: the caller asked not to invoke it."""


def authorize(  # noqa: PLR0917 - one request's parts, passed along the pipeline
    route: Route,
    request: HttpRequest,
    exchange: Exchange,
    headers: dict[str, str],
    query: dict[str, str],
    query_string: str,
    path_params: dict[str, str],
    *,
    cache: AuthorizerCache,
    events: ProxyEvents,
    pools: Mapping[str, FunctionPool],
    model: ApiModel,
    may_invoke: bool = True,
) -> GatewayAnswer | None:
    """The route's authorizer for one request: its cached answer for these identity values, else
    the function's (then cached); the policy checked against the method ARN. None when allowed,
    with ``exchange.authorizer`` set; else the answer API Gateway gives. Without ``may_invoke``,
    a request the cache cannot answer raises :class:`NeedsInvocation` instead."""
    spec = model.authorizers[route.authorizer or ""]
    identity = identity_values(spec, headers, query)
    if identity is None:
        return UNAUTHORIZED
    result = cache.get(spec.name, identity)
    if result is None and not may_invoke:
        raise NeedsInvocation(spec.function)
    if result is None:
        event = events.authorizer_event(request, exchange, query_string, path_params)
        try:
            result = _invoke(pools, spec.function, event, exchange.request_id)
        except UnauthorizedError:
            return UNAUTHORIZED
        except AuthorizerFailedError as exc:
            _log.error("authorizer %s failed: %s", spec.name, exc)
            return AUTHORIZER_FAILURE
        cache.put(spec.name, identity, result, spec.ttl_seconds)
    exchange.authorizer = result
    decision = result.decide(events.method_arn(request.method, exchange.path))
    if decision == "explicit_deny":
        return EXPLICIT_DENY
    if decision == "implicit_deny":
        return IMPLICIT_DENY
    return None


def _invoke(
    pools: Mapping[str, FunctionPool], function: str, event: dict[str, Any], request_id: str
) -> AuthorizerResult:
    try:
        answer = pools[function].invoke(event, request_id)
    except Exception as exc:
        if str(exc) == "Unauthorized":
            raise UnauthorizedError from exc
        kind = exc.error_type if isinstance(exc, FunctionError) else type(exc).__name__
        _log.error("authorizer function %s failed: %s: %s", function, kind, exc)
        raise AuthorizerFailedError(f"{kind} in the authorizer") from exc
    return AuthorizerResult.parse(answer)
