"""The invocation's time budget, from the Lambda context, for code that must finish in time.

API Gateway gives up on an integration after 29 s and Lambda kills a function at its own Timeout;
either way the work is lost half-done. Handlers call :func:`start` with their context; retries and
upstream calls ask :func:`remaining` how much is left and stop (or shrink) before it runs out.
Outside an invocation (tests without a context, scripts) the budget is :data:`DEFAULT_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

# API Gateway's integration timeout: no answer is useful after it, whatever Lambda's Timeout is.
# 29 s is API Gateway's default; an integration configured otherwise says so in this env var
# (the local gateway sets it when started with --integration-timeout).
INTEGRATION_TIMEOUT_ENV = "INTEGRATION_TIMEOUT_SECONDS"
INTEGRATION_TIMEOUT_SECONDS = 29.0
DEFAULT_SECONDS = INTEGRATION_TIMEOUT_SECONDS


def integration_timeout() -> float:
    try:
        return float(os.environ.get(INTEGRATION_TIMEOUT_ENV) or INTEGRATION_TIMEOUT_SECONDS)
    except ValueError:
        return INTEGRATION_TIMEOUT_SECONDS


_deadline: ContextVar[float | None] = ContextVar("tenantry_deadline", default=None)


@contextlib.contextmanager
def budget(context: Any | None, *, cap_seconds: float | None = None) -> Iterator[None]:
    """:func:`start` for the duration of a ``with`` (one invocation), then the previous budget."""
    token = _deadline.set(None)
    try:
        start(context, cap_seconds=cap_seconds)
        yield
    finally:
        _deadline.reset(token)


def start(context: Any | None, *, cap_seconds: float | None = None) -> None:
    """Begin an invocation's budget: the context's remaining time, capped (e.g. by the gateway's
    integration timeout for API handlers, which Lambda's own Timeout may exceed)."""
    seconds = DEFAULT_SECONDS
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining_ms):
        try:
            seconds = float(remaining_ms()) / 1000
        except (TypeError, ValueError):
            seconds = DEFAULT_SECONDS
    if cap_seconds is not None:
        seconds = min(seconds, cap_seconds)
    _deadline.set(time.monotonic() + seconds)


@contextlib.contextmanager
def capped(seconds: float) -> Iterator[None]:
    """Within this block, at most ``seconds`` more of the invocation's budget (work that must
    answer sooner than the invocation may run, e.g. a JSON answer on a streamed route)."""
    token = _deadline.set(time.monotonic() + min(remaining(), seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float:
    """Seconds left in this invocation (never negative)."""
    deadline = _deadline.get()
    if deadline is None:
        return DEFAULT_SECONDS
    return max(0.0, deadline - time.monotonic())
