"""Hostile-body checks that run before any handler parses a body, so no input can cause a 5xx.

API Gateway hands a handler whatever bytes the client sent. Python's ``json`` module then accepts
an object with a duplicate key (the last value wins, where a proxy or a WAF reading the first would
disagree with the API about what was sent), and things no store can keep or give back: ``NaN``
and ``Infinity`` (not JSON, read back as null), nesting deep enough to raise ``RecursionError``
(or to be stored and never read: DynamoDB keeps 32 levels), and lone UTF-16 surrogates that cannot
be encoded as UTF-8. Each is refused here with a 4xx that names the field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

# DynamoDB documents nest at most 32 levels; a body's top level counts as one, so an event's
# ``data`` (one level below) always fits in an item. Also far below Python's recursion limit.
MAX_JSON_DEPTH = 32

# Strings (with their escapes) or a structural character; everything else is skipped by the regex.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]', re.DOTALL)


@dataclass(frozen=True, slots=True)
class BodyProblem:
    status: int
    code: str
    message: str
    field: str


def _path(parts: list[str | int]) -> str:
    return ".".join(str(part) for part in parts) or "body"


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> str | None:
    """The dotted path of the first container nested deeper than ``limit``, or None.

    A linear scan over the raw text (no recursion), so it is safe on any input, valid or not.
    """
    if text.count("{") + text.count("[") <= limit:
        return None
    # Each open container: [is_object, label (key or index), expecting_a_key]
    frames: list[list[Any]] = []
    for match in _TOKENS.finditer(text):
        piece = match.group()
        if piece[0] == '"':
            if frames and frames[-1][0] and frames[-1][2]:
                try:
                    frames[-1][1] = json.loads(piece)
                except ValueError:
                    frames[-1][1] = piece[1:-1]
                frames[-1][2] = False
        elif piece in "{[":
            if len(frames) >= limit:
                return _path([frame[1] for frame in frames])
            frames.append([piece == "{", None if piece == "{" else 0, piece == "{"])
        elif piece in "}]":
            if frames:
                frames.pop()
        elif piece == "," and frames:
            if frames[-1][0]:
                frames[-1][2] = True
            else:
                frames[-1][1] += 1
    return None


class _Duplicated(dict[str, Any]):
    """An object in which ``key`` came twice (its other keys as parsed)."""

    key: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            duplicated = _Duplicated(found)
            duplicated.key = key
            return duplicated
        found[key] = value
    return found


def _duplicate(value: Any, parts: list[str | int]) -> list[str | int] | None:
    """The path of the first duplicate key, in document order, or None."""
    if isinstance(value, _Duplicated):
        return [*parts, value.key]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        found = _duplicate(item, [*parts, name])
        if found is not None:
            return found
    return None


def _not_a_number(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a double")
    return value


def _unencodable(value: Any, parts: list[str | int]) -> list[str | int] | None:
    """The path of the first string (key or value) holding a lone surrogate, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return parts
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unencodable(key, [*parts, key]) if isinstance(key, str) else None
            if found is not None:
                return found
            found = _unencodable(item, [*parts, key])
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unencodable(item, [*parts, index])
            if found is not None:
                return found
    return None


def check(text: str) -> BodyProblem | None:
    """Why ``text`` must be refused before a handler parses it, or None when it is safe to parse."""
    deep = too_deep(text)
    if deep is not None:
        return BodyProblem(
            422,
            "too_deep",
            f"{deep}: JSON nested deeper than {MAX_JSON_DEPTH} levels",
            deep,
        )
    try:
        parsed = json.loads(
            text, parse_constant=_not_a_number, parse_float=_finite, object_pairs_hook=_object
        )
    except (ValueError, RecursionError) as exc:
        return BodyProblem(400, "malformed_json", f"Malformed JSON body: {exc}", "body")
    duplicate = _duplicate(parsed, [])
    if duplicate is not None:
        field = _path(duplicate)
        return BodyProblem(
            400, "duplicate_key", f"{field}: the key {duplicate[-1]!r} appears twice in one object", field
        )
    if parsed is not None and not isinstance(parsed, dict):
        # Every body of this API is an object (null only where it is optional, as documented); an
        # optional one must not turn `[null]` into "absent".
        return BodyProblem(422, "not_an_object", "The body must be a JSON object", "body")
    surrogate = _unencodable(parsed, [])
    if surrogate is not None:
        field = _path(surrogate)
        return BodyProblem(
            422, "invalid_string", f"{field}: a lone UTF-16 surrogate is not valid Unicode text", field
        )
    return None
