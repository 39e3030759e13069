"""Does nothing but answer: the gateway benchmark's baseline."""

from typing import Any

ANSWER = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok":true}'}


def lambda_handler(_event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return ANSWER
