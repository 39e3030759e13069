"""Fails in the ways a handler can fail: an exception, or an answer API Gateway cannot map."""

from typing import Any


def lambda_handler(event: dict[str, Any], _context: Any) -> Any:
    how = (event.get("pathParameters") or {}).get("how")
    if how == "raise":
        raise RuntimeError("boom: a secret-looking traceback that must not reach the client")
    if how == "garbage":
        return {"no": "statusCode"}
    return {"statusCode": 200, "body": "survived"}
