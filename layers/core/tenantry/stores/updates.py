"""The one builder of a DynamoDB ``SET`` update: stores turn their typed changes into attribute
names and values, and this turns those into the expression, with placeholders for both (any
attribute name may be a reserved word, such as ``status`` or ``name``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SetUpdate:
    """``UpdateExpression``, ``ExpressionAttributeNames`` and ``ExpressionAttributeValues`` for
    ``update_item``; a store adds its condition's own placeholders to ``names`` and ``values``."""

    expression: str
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


def set_update(changes: Mapping[str, Any]) -> SetUpdate:
    """``SET #f0 = :v0, …`` for every attribute in ``changes`` (at least one)."""
    if not changes:
        raise ValueError("an update sets at least one attribute")
    names = {f"#f{index}": name for index, name in enumerate(changes)}
    values = {f":v{index}": value for index, value in enumerate(changes.values())}
    assignments = ", ".join(f"#f{index} = :v{index}" for index in range(len(changes)))
    return SetUpdate(f"SET {assignments}", names, values)
