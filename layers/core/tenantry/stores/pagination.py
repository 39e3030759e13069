"""Opaque page tokens: DynamoDB's LastEvaluatedKey, as URL-safe base64 JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tenantry.errors import BadRequest
from tenantry.stores import values


def encode_token(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(values.plain(last_key), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str | None, field: str = "next_token") -> dict[str, Any] | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("Invalid page token", code="invalid_token", field=field) from exc
    if not isinstance(decoded, dict):
        raise BadRequest("Invalid page token", code="invalid_token", field=field)
    return decoded
