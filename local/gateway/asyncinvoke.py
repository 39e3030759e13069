"""Lambda's asynchronous invocation, locally: retries, then the on-failure destination.

CloudWatch Logs invokes a subscribed function asynchronously. When the function fails, Lambda
tries again ``MaximumRetryAttempts`` times (the function's ``EventInvokeConfig``; 2 by default),
then sends an invocation record to the ``OnFailure`` destination: the original event as
``requestPayload``, why it failed as ``responsePayload``. The local gateway does the same with the
template's settings, so a batch metering could not apply waits in the local queue (the embedded
SQS) for ``tenantry metering replay``, as it would on AWS. Lambda waits minutes between retries;
locally they follow at once (an injected fault is drawn afresh per request either way).
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from local.gateway.api import FunctionSpec
from local.gateway.sandbox import FunctionError

_log = logging.getLogger("tenantry.local.gateway")

# (function, destination ARN, message body) → sends it with the function's role, as Lambda does.
SendToDestination = Callable[[FunctionSpec, str, str], None]


class Invocable(Protocol):
    spec: FunctionSpec

    def invoke(self, event: Any, request_id: str, tenant_id: str | None = None) -> Any: ...


def failure_record(
    spec: FunctionSpec, event: Any, request_id: str, attempts: int, error: BaseException
) -> dict[str, Any]:
    """The record Lambda sends to an on-failure destination (the "invocation record" of AWS's
    documentation on asynchronous invocation destinations)."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{spec.arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": _error_payload(error),
    }


def _error_payload(error: BaseException) -> dict[str, Any]:
    if isinstance(error, FunctionError):  # the function's own error, as its sandbox reported it
        return {"errorMessage": error.message, "errorType": error.error_type, "stackTrace": error.stack_trace}
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def invoke_async(pool: Invocable, event: Any, send: SendToDestination) -> bool:
    """Invoke like Lambda's ``Event`` invocation type: True when an attempt succeeded; False when
    every attempt failed and the record went to the destination. Raises only if the record could
    not be sent (the caller keeps the event and offers it again)."""
    spec = pool.spec
    request_id = str(uuid.uuid4())  # the same for every attempt, as Lambda keeps it
    attempts = 1 + max(0, spec.async_retries)
    error: BaseException | None = None
    for attempt in range(1, attempts + 1):
        try:
            pool.invoke(event, request_id)
        except Exception as exc:  # noqa: BLE001 - any function error is a failed attempt
            error = exc
            _log.warning("%s failed (attempt %d of %d): %s", spec.logical_id, attempt, attempts, exc)
            continue
        return True
    assert error is not None
    record = failure_record(spec, event, request_id, attempts, error)
    if spec.on_failure_arn is None:
        # What Lambda does without a destination: the event is dropped (and logged here).
        _log.error(
            "%s: event dropped after %d attempts (no on-failure destination)", spec.logical_id, attempts
        )
        return False
    send(spec, spec.on_failure_arn, json.dumps(record, separators=(",", ":")))
    _log.error(
        "%s failed %d times; its event is in %s (tenantry metering replay)",
        spec.logical_id,
        attempts,
        spec.on_failure_arn.rsplit(":", 1)[-1],
    )
    return False
