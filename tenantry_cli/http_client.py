"""A minimal JSON-over-HTTP client for the tooling (stdlib only): the stack's own API, locally or on AWS."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class UnreachableError(Exception):
    """Nothing answered at the URL."""


def call(url: str, method: str, path: str, key: str | None, body: Any = None) -> tuple[int, Any]:
    """One request; (status, decoded JSON body or None). HTTP errors are answers, not exceptions."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)  # noqa: S310 - an operator's URL
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise UnreachableError(f"{url}: {getattr(error, 'reason', error)}") from error
    try:
        return status, (json.loads(payload) if payload else None)
    except ValueError:
        return status, {"message": payload.decode(errors="replace")}
