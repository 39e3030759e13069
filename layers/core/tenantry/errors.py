"""Errors the library raises on purpose; the HTTP glue turns each into a JSON answer.

Every body carries ``message`` (API Gateway's own key), ``error`` (a stable code) and ``request_id``.
A body about a field also names it twice, the same way on every route: ``field`` (the first, or
only, one) and ``errors`` (each with its ``field``, ``message`` and ``type``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# pydantic prefixes a validator's own words with the kind of exception it raised.
_PYDANTIC_PREFIX = re.compile(r"^(?:Value error|Assertion failed), ")


class ApiError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.headers = headers or {}
        self.errors = errors

    def body(self) -> dict[str, object]:
        return error_body(self.message, self.code, self.field, self.errors)


def error_body(
    message: str, code: str, field: str | None = None, errors: list[dict[str, str]] | None = None
) -> dict[str, object]:
    """An error answer's body (the HTTP glue adds ``request_id``): ``field`` and ``errors`` go
    together, ``errors`` defaulting to the one field with this message and code."""
    body: dict[str, object] = {"message": message, "error": code}
    if field is not None or errors:
        listed = errors or [{"field": str(field), "message": message, "type": code}]
        body["field"] = listed[0]["field"] if field is None else field
        body["errors"] = listed
    return body


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unprocessable(ApiError):
    status = 422
    code = "validation_error"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(ApiError):
    status = 429
    code = "too_many_requests"


class UpstreamFailed(ApiError):
    status = 502
    code = "upstream_failed"


class UpstreamUnavailable(ApiError):
    status = 503
    code = "upstream_unavailable"


class GatewayTimeout(ApiError):
    """Work that could not finish before API Gateway's integration timeout; nothing was stored."""

    status = 504
    code = "timeout"


class ServiceBusy(ApiError):
    """AWS throttled us past every retry the request's time allowed; the request may be retried."""

    status = 503
    code = "service_busy"


def validation_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message as a client reads it: a validator's own words, without
    pydantic's ``Value error, `` (or ``Assertion failed, ``) in front."""
    return _PYDANTIC_PREFIX.sub("", str(error.get("msg", "invalid")))
