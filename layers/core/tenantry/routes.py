"""Who may call each route: the one role table behind the authorizer's policy, the handlers'
role checks, the OpenAPI document's security notes and the price table's coverage.

Keys are ``METHOD /path`` as template.yaml writes its Api events (``{name}`` for a parameter). A
unit test checks the table against the template: the same routes, and each route's Auth agrees
with its role (public: no authorizer; admin: the authorizer without a usage-plan key; tenant: the
authorizer and a usage-plan key), and the authorizer's policy allows exactly what the table says.

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

_PARAMETER = re.compile(r"\{[^}/]+\}")


def role_of(method: str, path: str) -> Role | None:
    """The role of ``METHOD /path`` (the template's path, with ``{parameters}``), or None."""
    return ROLES.get(f"{method.upper()} {path}")


def is_streamed(method: str, path: str) -> bool:
    """Whether ``METHOD /path``'s integration streams (:data:`STREAMED`)."""
    return f"{method.upper()} {path}" in STREAMED


def routes_for(role: Role) -> tuple[str, ...]:
    return tuple(route for route, owner in ROLES.items() if owner == role)


def method_arn_pattern(route: str) -> str:
    """``GET /tenants/{tenant_id}/keys`` → ``GET/tenants/*/keys``: the part of an execute-api
    method ARN after the stage, with IAM's ``*`` for each path parameter."""
    method, _, path = route.partition(" ")
    return f"{method}/{_PARAMETER.sub('*', path.lstrip('/'))}"
