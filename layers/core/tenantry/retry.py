"""Retrying what botocore cannot: a transaction that lost a race.

botocore's standard retry mode (see :mod:`tenantry.aws`) retries throttling and transient errors
itself. It does not retry ``TransactionCanceledException``, which DynamoDB answers when a
transaction met another one on the same item (reason ``TransactionConflict``) or was throttled
inside the transaction (reason ``ThrottlingError``). Those are retried here, with full-jitter
exponential backoff, for as long as the invocation's budget allows (:mod:`tenantry.deadline`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from tenantry import aws, deadline

# Cancellation reasons that mean "the same request may well succeed if sent again".
RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError"})
# botocore retried these already (standard mode); a write path with time left tries once more
# rather than fail a request for load that is usually gone a moment later.
# (API Gateway's key management answers TooManyRequestsException.)
THROTTLED_CODES = (
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
)
# A write that failed this way may have committed all the same (its answer lost, then every resend
# of botocore's refused): the caller must find out before answering that nothing was stored.
UNKNOWN_OUTCOME_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}
)
BASE_SECONDS = 0.02
CAP_SECONDS = 1.0
# Time kept back for what follows a retried write (the answer, the logs).
RESERVE_SECONDS = 1.0


def cancellation_reasons(exc: Exception) -> list[str]:
    """The per-item reason codes of a TransactionCanceledException ("None" for untouched items)."""
    if aws.error_code(exc) != "TransactionCanceledException":
        return []
    response: Any = getattr(exc, "response", None) or {}
    return [str(reason.get("Code", "")) for reason in response.get("CancellationReasons", [])]


def is_lost_race(exc: Exception) -> bool:
    """Nothing was written and the same write may succeed if sent again: a transaction cancelled
    only for conflicts or throttling (never for a failed condition), a single-item write that met
    an ongoing transaction, or a throttle botocore's own attempts did not get past."""
    code = aws.error_code(exc)
    if code in ("TransactionConflictException", *THROTTLED_CODES):
        return True
    reasons = {reason for reason in cancellation_reasons(exc) if reason not in ("None", "")}
    return bool(reasons) and reasons <= RETRYABLE_REASONS


def outcome_unknown(exc: Exception) -> bool:
    """A write that may or may not have committed (see ``UNKNOWN_OUTCOME_CODES``)."""
    return aws.error_code(exc) in UNKNOWN_OUTCOME_CODES


def backoff_seconds(attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^attempt)]."""
    return random.uniform(0, min(CAP_SECONDS, BASE_SECONDS * 2 ** min(attempt, 16)))  # noqa: S311


def pause(
    attempt: int, *, sleep: Callable[[float], None] = time.sleep, reserve: float = RESERVE_SECONDS
) -> bool:
    """Sleep before retry ``attempt`` (1, 2, …) if the budget allows it and one more try; False if
    the budget is spent (the caller gives up)."""
    wait = backoff_seconds(attempt)
    if deadline.remaining() - wait <= reserve:
        return False
    sleep(wait)
    return True


def call[T](
    operation: Callable[[], T],
    *,
    retryable: Callable[[Exception], bool] = is_lost_race,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``operation()``, sent again after a jittered pause while it fails with a lost race or a
    throttle botocore gave up on, as long as the budget allows; then the last error is raised.
    Only for calls that are safe to send twice (idempotent, or conditional)."""
    attempt = 0
    while True:
        try:
            return operation()
        except Exception as exc:
            attempt += 1
            if not retryable(exc) or not pause(attempt, sleep=sleep):
                raise
