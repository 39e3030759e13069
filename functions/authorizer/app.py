"""Lambda REQUEST authorizer: resolves X-API-Key to a tenant. Logic: tenantry.authorizer."""

from typing import Any

from tenantry.authorizer import authorize


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorize(event)
