"""Every integer field of every request model takes an integral number (``7.0``) as the integer, as
JSON Schema reads it, and refuses a fraction: one rule for every body (design §5)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from pydantic import ValidationError

import tenantry.models
from tenantry.models.numbers import IntegralNumbers


def _request_models() -> list[type[IntegralNumbers]]:
    for module in pkgutil.iter_modules(tenantry.models.__path__):
        importlib.import_module(f"tenantry.models.{module.name}")
    found: list[type[IntegralNumbers]] = []
    pending = list(IntegralNumbers.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return found


def _is_integer(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "integer" or any(_is_integer(s) for s in schema.get("anyOf", []))


def _lowest(schema: dict[str, Any]) -> int:
    bounds = [schema, *schema.get("anyOf", [])]
    return max([1, *(int(s["minimum"]) for s in bounds if "minimum" in s)])


INTEGER_FIELDS = [
    (model, name, _lowest(schema))
    for model in _request_models()
    for name, schema in model.model_json_schema(mode="validation").get("properties", {}).items()
    if _is_integer(schema)
]


def _errors_of(model: type[IntegralNumbers], name: str, value: float) -> list[str]:
    try:
        model.model_validate({name: value})
    except ValidationError as exc:
        return [error["type"] for error in exc.errors() if error["loc"][:1] == (name,)]
    return []


def test_the_request_models_have_integer_fields_to_check() -> None:
    # Given the request models of every route, then the key requests' lifetimes are among them
    names = {(model.__name__, name) for model, name, _ in INTEGER_FIELDS}
    assert {("IssueKeyRequest", "expires_in_seconds"), ("MyKeyRequest", "expires_in_seconds")} <= names
    assert ("LimitOverrides", "burst") in names


@pytest.mark.parametrize(
    ("model", "name", "lowest"), INTEGER_FIELDS, ids=[f"{m.__name__}.{n}" for m, n, _ in INTEGER_FIELDS]
)
def test_an_integer_field_takes_an_integral_number_and_refuses_a_fraction(
    model: type[IntegralNumbers], name: str, lowest: int
) -> None:
    # When the field is sent as an integral number, then as a fraction
    integral = _errors_of(model, name, float(lowest))
    fraction = _errors_of(model, name, lowest + 0.5)
    # Then the first is the integer, the second is refused as not an integer
    assert integral == [], (model.__name__, name, integral)
    assert fraction and set(fraction) <= {"int_from_float", "int_type"}, (model.__name__, name, fraction)
