"""DynamoDB's numbers, converted in one place: the resource layer answers every number as a
``Decimal``, and answers, tokens and counters want plain ints (or floats)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer


def as_int(value: Any) -> int:
    """A counter attribute as an int: 0 when it is missing (a counter nothing added to yet)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | Decimal) or (isinstance(value, str) and value):
        return int(value)
    return 0


def plain(value: Any) -> Any:
    """``value`` with every Decimal inside it (dicts and lists too) made an int, or a float when
    it has a fraction."""
    if isinstance(value, dict):
        return {name: plain(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [plain(inner) for inner in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


_DESERIALIZER = TypeDeserializer()


def untyped(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's typed wire form (``{"N": "3"}``) as plain values: what an error
    carries (a cancelled transaction's ``CancellationReasons`` items), which the resource layer
    does not convert as it converts answers. Numbers come back as Decimal, as in answers."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
