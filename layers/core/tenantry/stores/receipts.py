"""Data access of publish receipts: what a publish with an ``Idempotency-Key`` answered, kept 24 h.

A receipt is an item of the Idempotency table under the tenant's partition (sort key ``id``), so
the tenant's scoped credentials reach it (``dynamodb:LeadingKeys``) and offboarding purges it with
the rest of the partition. It is written by the publish's own ``TransactWriteItems`` (see
:mod:`tenantry.stores.events`), never on its own: the events and their receipt exist together or
not at all, whatever DynamoDB throttles, cancels or times out, so a resent request always finds
the receipt of an append that landed.

The item keeps the layout (and hashes) of Powertools' idempotency records, which the publishes of
earlier releases wrote, so both read each other's: ``id`` = ``publish#<md5 of [scope, key]>``,
``status``, ``expiration`` (epoch seconds), ``validation`` (md5 of the body) and ``data`` (the
answer as JSON). Only those releases wrote ``INPROGRESS`` records, with ``in_progress_expiration``
(epoch milliseconds). TTL deletes receipts some time after ``expiration``; expiry is decided here,
in code and in the write's condition, never by TTL (moto never expires an item).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenantry import aws, settings
from tenantry.stores import values

# The sort key's prefix: Powertools' ``key_prefix`` of the releases that used it.
PREFIX = "publish"
COMPLETED = "COMPLETED"
IN_PROGRESS = "INPROGRESS"
TTL_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Receipt:
    """A publish's receipt, written with its events: ``answer`` is what the publish answers.
    ``written_at`` (epoch seconds) is fixed per publish, so a transaction sent again with the same
    token carries the very same condition."""

    record_id: str
    payload_hash: str
    answer: Mapping[str, Any]
    written_at: int

    @property
    def expires_at(self) -> int:
        return self.written_at + TTL_SECONDS


@dataclass(frozen=True, slots=True)
class FoundReceipt:
    """A receipt as read back. ``answer`` is None on an in-progress record of an earlier release."""

    status: str
    payload_hash: str
    answer: Mapping[str, Any] | None
    expires_at: int
    in_progress_until_ms: int

    def live(self, now: float) -> bool:
        """Still answering for its key: not past its 24 h, and (if an earlier release's in-progress
        record) its invocation may still be running."""
        if self.expires_at <= now:
            return False
        return self.status == COMPLETED or self.in_progress_until_ms > now * 1000


def _digest(value: Any) -> str:
    # Powertools' hash: md5 of sorted-key JSON. A lookup key, not a secret.
    return hashlib.md5(json.dumps(value, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def record_id(scope: str, idempotency_key: str) -> str:
    """The receipt's sort key for a key used by ``scope`` (the tenant, and its incarnation)."""
    return f"{PREFIX}#{_digest([scope, idempotency_key])}"


def payload_hash(body: Any) -> str:
    """What a resend's body is compared by: the same JSON body gives the same hash."""
    return _digest(body)


def _table() -> str:
    return settings.table_name(settings.IDEMPOTENCY_TABLE)


def put_operation(tenant_id: str, receipt: Receipt) -> dict[str, Any]:
    """The receipt's ``Put`` for a transaction: it lands only where no live receipt has the key
    (none, one past its 24 h, or an earlier release's in-progress record whose invocation ended)."""
    item = {
        "tenant_id": tenant_id,
        "id": receipt.record_id,
        "status": COMPLETED,
        "expiration": receipt.expires_at,
        "validation": receipt.payload_hash,
        "data": json.dumps(receipt.answer, sort_keys=True),
    }
    return {
        "Put": {
            "TableName": _table(),
            "Item": item,
            "ConditionExpression": "attribute_not_exists(#id) OR #expiration < :now OR "
            "(#status = :in_progress AND #in_progress_until < :now_ms)",
            "ExpressionAttributeNames": {
                "#id": "id",
                "#expiration": "expiration",
                "#status": "status",
                "#in_progress_until": "in_progress_expiration",
            },
            "ExpressionAttributeValues": {
                ":now": receipt.written_at,
                ":now_ms": receipt.written_at * 1000,
                ":in_progress": IN_PROGRESS,
            },
        }
    }


def read(tenant_id: str, receipt_id: str) -> FoundReceipt | None:
    """The receipt stored under ``receipt_id``, expired or not (a consistent read), or None."""
    item = (
        aws.data_table(_table())
        .get_item(Key={"tenant_id": tenant_id, "id": receipt_id}, ConsistentRead=True)
        .get("Item")
    )
    if not item:
        return None
    data = item.get("data")
    return FoundReceipt(
        status=str(item.get("status", "")),
        payload_hash=str(item.get("validation", "")),
        answer=json.loads(str(data)) if data else None,
        expires_at=values.as_int(item.get("expiration")),
        in_progress_until_ms=values.as_int(item.get("in_progress_expiration")),
    )
