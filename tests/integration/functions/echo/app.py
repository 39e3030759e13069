"""Answers with the event and context it was invoked with, so tests can check what the gateway built."""

import json
import os
from typing import Any

GREETING = "hello"


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    answer = {
        "greeting": GREETING,
        "event": event,
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "aws_request_id": context.aws_request_id,
            "invoked_function_arn": context.invoked_function_arn,
        },
        "env": {
            name: os.environ.get(name) for name in ("ECHO_TABLE", "ECHO_SUB", "ECHO_BURST", "TENANTS_TABLE")
        },
    }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps(answer),
    }
