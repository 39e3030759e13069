"""What the stores' writes share: the one builder of a DynamoDB ``SET`` update (stores turn their
typed changes into attribute names and values, and this turns those into the expression, with
placeholders for both: any attribute name may be a reserved word, such as ``status`` or
``name``), and the one sender of a conditional write."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from tenantry import aws, retry


@dataclass(frozen=True, slots=True)
class SetUpdate:
    """``UpdateExpression``, ``ExpressionAttributeNames`` and ``ExpressionAttributeValues`` for
    ``update_item``; a store adds its condition's own placeholders to ``names`` and ``values``."""

    expression: str
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def request(self, key: Mapping[str, Any], condition: str) -> dict[str, Any]:
        """The ``update_item`` arguments for the item under ``key``, if ``condition`` holds."""
        return {
            "Key": dict(key),
            "UpdateExpression": self.expression,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
            "ConditionExpression": condition,
        }


def set_update(changes: Mapping[str, Any]) -> SetUpdate:
    """``SET #f0 = :v0, …`` for every attribute in ``changes`` (at least one)."""
    if not changes:
        raise ValueError("an update sets at least one attribute")
    names = {f"#f{index}": name for index, name in enumerate(changes)}
    values = {f":v{index}": value for index, value in enumerate(changes.values())}
    assignments = ", ".join(f"#f{index} = :v{index}" for index in range(len(changes)))
    return SetUpdate(f"SET {assignments}", names, values)


def conditional[T](write: Callable[[], T]) -> T | None:
    """Send a conditional write (again after a lost race or a throttle, as :func:`tenantry.retry.call`
    does): its answer, or None when its condition failed and nothing was written."""
    try:
        return retry.call(write)
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise
