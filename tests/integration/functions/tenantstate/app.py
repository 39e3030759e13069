"""Keeps module state across invocations, as any warm handler may (caches, globals, a compromised
dependency): each call adds the caller's tenant to a module-level list and answers with the list
and the tenant id Lambda reports for this execution environment."""

import json
from typing import Any

SEEN: list[str] = []  # module state: it lives as long as the sandbox


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    tenant = str(((event.get("requestContext") or {}).get("authorizer") or {}).get("tenant_id", ""))
    SEEN.append(tenant)
    body = {"seen": SEEN, "lambda_tenant_id": getattr(context, "tenant_id", None)}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
