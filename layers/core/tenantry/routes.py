"""Who may call each route: the one role table behind the authorizer's policy, the handlers'
role checks, the OpenAPI document's security notes and the price table's coverage; and, beside it,
the scope each tenant route needs (a key's ``scopes`` narrow what it may call).

Keys are ``METHOD /path`` as template.yaml writes its Api events (``{name}`` for a parameter). A
unit test checks the table against the template: the same routes, and each route's Auth agrees
with its role (public: no authorizer; admin: the authorizer without a usage-plan key; tenant: the
authorizer and a usage-plan key), and the authorizer's policy allows exactly what the table says.
Every tenant route has its entry in :data:`SCOPES` (a test fails for one that has none).

Standard library only: the authorizer imports it.
"""

from __future__ import annotations

import re
from typing import Final, Literal

Role = Literal["admin", "tenant", "public"]
ADMIN: Final = "admin"
TENANT: Final = "tenant"
PUBLIC: Final = "public"

ROLES: Final[dict[str, Role]] = {
    # Operators: onboarding, keys, tiers, offboarding, any tenant's usage, fleet stats.
    "POST /tenants": "admin",
    "GET /tenants": "admin",
    "GET /tenants/{tenant_id}": "admin",
    "PATCH /tenants/{tenant_id}": "admin",
    "DELETE /tenants/{tenant_id}": "admin",
    "POST /tenants/{tenant_id}/keys": "admin",
    "GET /tenants/{tenant_id}/keys": "admin",
    "DELETE /tenants/{tenant_id}/keys/{key_id}": "admin",
    "GET /tenants/{tenant_id}/usage": "admin",
    "GET /stats": "admin",
    "GET /stats/prometheus": "admin",
    # A tenant's own data.
    "GET /me": "tenant",
    "POST /me/keys": "tenant",
    "GET /me/keys": "tenant",
    "DELETE /me/keys/{key_id}": "tenant",
    "GET /usage": "tenant",
    "POST /events": "tenant",
    "GET /events": "tenant",
    "GET /events/stream": "tenant",
    "GET /events/{position}": "tenant",
    "GET /metrics": "tenant",
    "PUT /consumers/{name}": "tenant",
    "GET /consumers/{name}": "tenant",
    "POST /chat": "tenant",
    "GET /sessions": "tenant",
    "GET /sessions/{session_id}": "tenant",
    "DELETE /sessions/{session_id}": "tenant",
    # No key at all.
    "GET /health": "public",
    "GET /ready": "public",
    "GET /console": "public",
    "GET /console/{asset}": "public",
}

# The routes whose integration streams (template.yaml: ``responseTransferMode: STREAM`` and the
# ``response-streaming-invocations`` URI): every answer of theirs goes out through the function's
# response stream (tenantry.streaming), prelude first. A unit test checks the template agrees.
STREAMED: Final[frozenset[str]] = frozenset({"POST /chat", "GET /events/stream"})

Scope = Literal["events:read", "events:write", "chat", "usage:read", "keys:write"]
SCOPE_NAMES: Final[tuple[Scope, ...]] = ("events:read", "events:write", "chat", "usage:read", "keys:write")

# The scope each tenant route needs. None: every tenant key may call it, whatever its scopes
# (GET /me: a key may always learn whose it is and what it may do). A key without scopes has
# them all.
SCOPES: Final[dict[str, Scope | None]] = {
    "GET /me": None,
    "POST /me/keys": "keys:write",
    "GET /me/keys": "keys:write",
    "DELETE /me/keys/{key_id}": "keys:write",
    "GET /usage": "usage:read",
    "POST /events": "events:write",
    "GET /events": "events:read",
    "GET /events/stream": "events:read",
    "GET /events/{position}": "events:read",
    "GET /metrics": "events:read",
    # A reader's checkpoint is part of reading: a read-only key keeps its own place (a subscription
    # with ``consumer=`` moves it too).
    "PUT /consumers/{name}": "events:read",
    "GET /consumers/{name}": "events:read",
    # Streamed (``"stream": true``) or not: one route, one integration, one scope.
    "POST /chat": "chat",
    "GET /sessions": "chat",
    "GET /sessions/{session_id}": "chat",
    "DELETE /sessions/{session_id}": "chat",
}

_PARAMETER = re.compile(r"\{[^}/]+\}")


def role_of(method: str, path: str) -> Role | None:
    """The role of ``METHOD /path`` (the template's path, with ``{parameters}``), or None."""
    return ROLES.get(f"{method.upper()} {path}")


def is_streamed(method: str, path: str) -> bool:
    """Whether ``METHOD /path``'s integration streams (:data:`STREAMED`)."""
    return f"{method.upper()} {path}" in STREAMED


def routes_for(role: Role) -> tuple[str, ...]:
    return tuple(route for route, owner in ROLES.items() if owner == role)


def scope_of(method: str, path: str) -> Scope | None:
    """The scope ``METHOD /path`` (a tenant route) needs; None when any tenant key may call it."""
    return SCOPES.get(f"{method.upper()} {path}")


def allows(scopes: frozenset[str] | None, route: str) -> bool:
    """Whether a tenant key with ``scopes`` (None: all of them) may call tenant route ``route``."""
    needed = SCOPES.get(route)
    return needed is None or scopes is None or needed in scopes


def scopes_from_text(text: str | None) -> frozenset[str] | None:
    """A key's scopes as stored and as the authorizer's context carries them (space-separated);
    None, the empty text or no text at all mean every scope."""
    found = frozenset((text or "").split())
    return found or None


def scopes_as_text(scopes: frozenset[str] | None) -> str:
    return " ".join(sorted(scopes)) if scopes else ""


def tenant_routes_for(scopes: frozenset[str] | None) -> tuple[str, ...]:
    """The tenant routes a key with ``scopes`` (None: all of them) may call."""
    return tuple(route for route in routes_for("tenant") if allows(scopes, route))


def method_arn_pattern(route: str) -> str:
    """``GET /tenants/{tenant_id}/keys`` → ``GET/tenants/*/keys``: the part of an execute-api
    method ARN after the stage, with IAM's ``*`` for each path parameter."""
    method, _, path = route.partition(" ")
    return f"{method}/{_PARAMETER.sub('*', path.lstrip('/'))}"
