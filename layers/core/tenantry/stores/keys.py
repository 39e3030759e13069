"""The ApiKeys table: one item per key, partition key ``sha256(key)``; GSI ``by-tenant``.

The raw key is never stored or logged. Items carry the tenant's tier and the key's status so the
authorizer answers from one consistent read (it reads this table with its own plain client, by
these attribute names: see docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, cast, get_args

from boto3.dynamodb.conditions import Key

from tenantry import aws, retry, routes, settings
from tenantry.errors import Conflict
from tenantry.keys import Role
from tenantry.stores import values
from tenantry.stores.updates import conditional, set_update

BY_TENANT_INDEX = "by-tenant"

KeyStatus = Literal["pending", "active", "suspended", "revoked"]
# A key item is written "pending" before its API Gateway twin exists and becomes active last, so
# a key whose issuing failed half-way is never usable and is known to be abandoned.
PENDING: Final[KeyStatus] = "pending"
ACTIVE: Final[KeyStatus] = "active"
SUSPENDED: Final[KeyStatus] = "suspended"  # the tenant is suspended: the authorizer answers Deny
REVOKED: Final[KeyStatus] = "revoked"
_STATUSES: Final = frozenset(get_args(KeyStatus))
_ROLES: Final = frozenset(get_args(Role))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key, as stored: never the key itself, only its hash and a hint for humans.

    ``expires_at`` (epoch seconds) is the key's own expiry or a rotation's grace end; ``incarnation``
    the tenant's (empty for admin keys and for keys made before incarnations existed);
    ``usage_key`` the value of the tenant's API Gateway key, which the authorizer answers as the
    usage identity (empty for admin keys and for keys from before usage identities);
    ``edge_key_id`` the key's own API Gateway key, under the first scheme only (one per tenant
    key, with the same value; ``tenantry keys migrate`` retires them); ``scopes`` what the key may
    call (None: every scope); ``name`` a label for humans."""

    key_hash: str
    key_id: str
    tenant_id: str
    role: Role
    tier: str
    status: KeyStatus
    hint: str
    created_at: str
    expires_at: int | None = None
    edge_key_id: str | None = None
    incarnation: str = ""
    revoked_at: str | None = None
    usage_key: str = ""
    name: str = ""
    scopes: frozenset[str] | None = None


class KeyMissingError(LookupError):
    """A change to a key item that does not exist (deleted meanwhile): nothing was written."""


class KeyExistsError(ValueError):
    """A put of a key whose hash another key already has (two keys with one SHA-256)."""


def abandoned() -> Conflict:
    """What activating a key that is no longer pending answers: another request abandoned it."""
    return Conflict(
        "The new key was abandoned by a concurrent key operation on this tenant; retry",
        code="key_operation_conflict",
    )


class KeyStore(Protocol):
    """The key operations the logic makes (tenantry.tenancy, tenantry.keysweep): :data:`DYNAMODB`
    in the functions, an in-memory fake (tests/fakes/keys.py) where DynamoDB is not the point.
    Every write is safe to send again."""

    def put(self, key: KeyRecord) -> None:
        """Insert a new key; the same key again (its id and tenant) is success, another key with
        its hash :class:`KeyExistsError`."""

    def get(self, key_hash: str) -> KeyRecord | None:
        """The key, read consistently."""

    def list_for_tenant(self, tenant_id: str, registered: Collection[str] = ()) -> list[KeyRecord]:
        """Every key of the tenant, oldest first, each read consistently (``registered``: the
        tenant's own list of its key hashes, which the eventually consistent index may lag)."""

    def activate(self, key_hash: str, *, edge_key_id: str | None, status: KeyStatus) -> None:
        """Turn a pending key into ``status`` (active or suspended); ``Conflict``
        key_operation_conflict when it is no longer pending (abandoned by another request)."""

    def set_tier_and_status(
        self, key_hash: str, *, tier: str | None = None, status: KeyStatus | None = None
    ) -> None:
        """Move the key to ``tier`` and/or ``status`` in one write; :class:`KeyMissingError` when
        there is no such key."""

    def set_expiry(self, key_hash: str, expires_at: int) -> None:
        """The key stops at ``expires_at`` (epoch seconds); :class:`KeyMissingError` when gone."""

    def revoke(self, key_hash: str, revoked_at: str) -> None:
        """The key is revoked (never usable again); :class:`KeyMissingError` when gone."""

    def set_usage_key(self, key_hash: str, usage_key: str) -> None:
        """The key draws from its tenant's usage identity ``usage_key`` from now on (the upgrade
        from one API Gateway key per tenant key); :class:`KeyMissingError` when gone."""

    def forget_edge_key(self, key_hash: str) -> None:
        """The key's own API Gateway key is gone: drop its id (none recorded is fine)."""

    def delete(self, key_hash: str) -> None:
        """Remove the key's item (none there is fine)."""


def _table() -> Any:
    return aws.table(settings.table_name(settings.API_KEYS_TABLE))


def _record(item: Mapping[str, Any]) -> KeyRecord:
    """A stored item as a record: the one place its attribute names and Decimals are read."""
    role, status = item.get("role"), item.get("status")
    if role not in _ROLES or status not in _STATUSES:
        raise ValueError(f"key item {item.get('key_id')!r} has role {role!r}, status {status!r}")
    expires_at = item.get("expires_at")
    edge_key_id = item.get("edge_key_id")
    revoked_at = item.get("revoked_at")
    scopes = item.get("scopes")
    return KeyRecord(
        key_hash=str(item["key_hash"]),
        key_id=str(item["key_id"]),
        tenant_id=str(item["tenant_id"]),
        role=cast("Role", role),
        tier=str(item.get("tier", "")),
        status=cast("KeyStatus", status),
        hint=str(item.get("hint", "")),
        created_at=str(item.get("created_at", "")),
        expires_at=None if expires_at is None else values.as_int(expires_at),
        edge_key_id=None if edge_key_id is None else str(edge_key_id),
        incarnation=str(item.get("incarnation", "")),
        revoked_at=None if revoked_at is None else str(revoked_at),
        usage_key=str(item.get("usage_key", "")),
        name=str(item.get("name", "")),
        scopes=routes.scopes_from_text(None if scopes is None else str(scopes)),
    )


def _item(key: KeyRecord) -> dict[str, Any]:
    """A record as the item to put: optional attributes only when set."""
    item: dict[str, Any] = {
        "key_hash": key.key_hash,
        "key_id": key.key_id,
        "tenant_id": key.tenant_id,
        "role": key.role,
        "tier": key.tier,
        "status": key.status,
        "hint": key.hint,
        "created_at": key.created_at,
    }
    optional = {
        "expires_at": key.expires_at,
        "edge_key_id": key.edge_key_id,
        "incarnation": key.incarnation or None,
        "revoked_at": key.revoked_at,
        # The authorizer reads these by name, as strings (see the module's docstring).
        "usage_key": key.usage_key or None,
        "name": key.name or None,
        "scopes": routes.scopes_as_text(key.scopes) or None,
    }
    item.update({name: value for name, value in optional.items() if value is not None})
    return item


class DynamoDBKeys:
    """:class:`KeyStore` over the ApiKeys table, with the function role's access (the table is
    keyed by key hash, not by tenant: tenantry.aws)."""

    def put(self, key: KeyRecord) -> None:
        """A send whose answer was lost and that botocore sent again finds its own item there:
        that is success, not a conflict."""
        put = conditional(
            lambda: _table().put_item(Item=_item(key), ConditionExpression="attribute_not_exists(key_hash)")
        )
        if put is None:
            existing = self.get(key.key_hash)
            if existing is None or (existing.key_id, existing.tenant_id) != (key.key_id, key.tenant_id):
                raise KeyExistsError(key.key_id)

    def get(self, key_hash: str) -> KeyRecord | None:
        item = _table().get_item(Key={"key_hash": key_hash}, ConsistentRead=True).get("Item")
        return None if item is None else _record(item)

    def list_for_tenant(self, tenant_id: str, registered: Collection[str] = ()) -> list[KeyRecord]:
        """The ``by-tenant`` index is eventually consistent: a key created a moment ago can be
        missing from it. ``registered`` closes that gap for security-relevant listings; the index
        still finds keys made before that list existed."""
        hashes: set[str] = set(registered)
        kwargs: dict[str, Any] = {
            "IndexName": BY_TENANT_INDEX,
            "KeyConditionExpression": Key("tenant_id").eq(tenant_id),
            "ProjectionExpression": "key_hash",
        }
        while True:
            response = _table().query(**kwargs)
            hashes.update(str(item["key_hash"]) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        fresh = [self.get(key_hash) for key_hash in sorted(hashes)]
        return sorted(
            (key for key in fresh if key is not None and key.tenant_id == tenant_id),
            key=lambda key: key.created_at,
        )

    def activate(self, key_hash: str, *, edge_key_id: str | None, status: KeyStatus) -> None:
        """The activation is conditional on the key still being pending; a send whose answer
        was lost, sent again, finds the key already as wanted: success."""
        changes: dict[str, Any] = {"status": status}
        if edge_key_id is not None:
            changes["edge_key_id"] = edge_key_id
        if self._set(key_hash, changes, expected_status=PENDING):
            return
        current = self.get(key_hash)
        if (
            current is not None
            and current.status == status
            and (edge_key_id is None or current.edge_key_id == edge_key_id)
        ):
            return  # a send whose answer was lost, sent again: the key is already what we wanted
        raise abandoned()

    def set_tier_and_status(
        self, key_hash: str, *, tier: str | None = None, status: KeyStatus | None = None
    ) -> None:
        changes = {name: value for name, value in (("tier", tier), ("status", status)) if value is not None}
        self._set_existing(key_hash, changes)

    def set_expiry(self, key_hash: str, expires_at: int) -> None:
        self._set_existing(key_hash, {"expires_at": expires_at})

    def revoke(self, key_hash: str, revoked_at: str) -> None:
        self._set_existing(key_hash, {"status": REVOKED, "revoked_at": revoked_at})

    def set_usage_key(self, key_hash: str, usage_key: str) -> None:
        self._set_existing(key_hash, {"usage_key": usage_key})

    def forget_edge_key(self, key_hash: str) -> None:
        conditional(
            lambda: _table().update_item(
                Key={"key_hash": key_hash},
                UpdateExpression="REMOVE edge_key_id",
                ConditionExpression="attribute_exists(key_hash)",
            )
        )

    def delete(self, key_hash: str) -> None:
        retry.call(lambda: _table().delete_item(Key={"key_hash": key_hash}))

    def _set_existing(self, key_hash: str, changes: Mapping[str, Any]) -> None:
        if not self._set(key_hash, changes):
            raise KeyMissingError(key_hash)

    def _set(
        self, key_hash: str, changes: Mapping[str, Any], *, expected_status: KeyStatus | None = None
    ) -> bool:
        """Set ``changes`` on the existing key item (whose status is ``expected_status``, if
        given); False when the condition failed (nothing written). Safe to send again."""
        update = set_update(changes)
        condition = "attribute_exists(key_hash)"
        if expected_status is not None:
            update.names["#status_now"] = "status"
            update.values[":status_now"] = expected_status
            condition += " AND #status_now = :status_now"
        written = conditional(
            lambda: _table().update_item(**update.request({"key_hash": key_hash}, condition))
        )
        return written is not None


DYNAMODB: Final = DynamoDBKeys()
