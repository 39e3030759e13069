"""Integers read the same way in a body and in a query string (design §5: JSON is read strictly and
the same way everywhere).

JSON Schema, and so the OpenAPI document, calls ``7.0`` an integer: a number is an integer by its
value, not by how it is written. Both readers below take an integral number (``7``, ``7.0``,
``7e0``) as the integer it is and refuse a non-integral one (``7.5``), so ``{"position": 7.0}`` and
``?limit=7.0`` are read alike. Everything else stays strict: a boolean is never 1, and a string in a
body is never a number. A query value is text, so it must be a JSON number's text (no ``+7``,
``07``, `` 7`` or ``7_000``, which Python's ``int()`` would take).
"""

from __future__ import annotations

import math
import re
import types
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

# RFC 8259's number grammar.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# Far past any bound a field sets (positions stop at 2**53 - 1): larger is refused before an int
# of that many digits is ever built.
_MAX_DIGITS = 38


def _not_an_integer() -> PydanticCustomError:
    return PydanticCustomError("int_parsing", "Input should be a valid integer")


def _integral_body_number(value: Any) -> Any:
    """A float with no fraction is the integer it stands for; anything else goes on unchanged, to
    be accepted or refused by the strict integer check."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        if abs(value) >= 10**_MAX_DIGITS:
            raise _not_an_integer()
        return int(value)
    return value


def _integral_query_text(value: Any) -> Any:
    """A query value that is a JSON number with an integral value, as an int; otherwise refused."""
    if not isinstance(value, str):
        return value
    if not _JSON_NUMBER.fullmatch(value):
        raise _not_an_integer()
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the grammar above only lets numbers through
        raise _not_an_integer() from None
    if number != number.to_integral_value():
        raise PydanticCustomError(
            "int_from_float", "Input should be a valid integer, got a number with a fractional part"
        )
    if number.adjusted() >= _MAX_DIGITS:
        raise _not_an_integer()
    return int(number)


def _takes_int(annotation: Any) -> bool:
    # Pydantic unwraps a field's own Annotated, not one inside a union (``Lifetime | None``).
    if get_origin(annotation) is Annotated:
        return _takes_int(get_args(annotation)[0])
    if annotation is int:
        return True
    return get_origin(annotation) in (Union, types.UnionType) and any(
        _takes_int(member) for member in get_args(annotation)
    )


class IntegralNumbers(BaseModel):
    """Base of the request models (``strict=True``): an integer field takes an integral number
    (``7.0``) as the integer. A validator of the model's, not of a type, so the document's bounds
    stay JSON Schema's ``minimum`` and ``maximum``."""

    @field_validator("*", mode="before")
    @classmethod
    def _integral_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return _integral_body_number(value) if field is not None and _takes_int(field.annotation) else value


# An integer query parameter: ``Annotated[QueryInt, Query(ge=1)]``.
QueryInt = Annotated[int, BeforeValidator(_integral_query_text)]
