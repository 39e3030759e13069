"""The authorizer step of the local gateway: identity sources, the result cache, IAM policy checks.

API Gateway caches an authorizer's answer for ``ReauthorizeEvery`` seconds under the identity
source values, and re-checks the cached policy against every later request's method ARN. That is
what makes one cached policy serve every route a role may call, and what makes a revoked key live
on until the cache is flushed. Both behaviours are reproduced here.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from local.gateway.api import AuthorizerSpec

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
