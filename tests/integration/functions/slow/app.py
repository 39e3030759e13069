"""Takes its time: sleeps the seconds in the path, or answers a body of the megabytes asked."""

import time
from typing import Any


def lambda_handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    params = event.get("pathParameters") or {}
    if "megabytes" in params:
        size = int(float(params["megabytes"]) * 1024 * 1024)
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "x" * size}
    time.sleep(min(float(params.get("seconds", "0")), 30))
    return {"statusCode": 200, "body": "done"}
