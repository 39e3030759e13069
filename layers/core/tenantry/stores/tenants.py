"""The Tenants table: one item per tenant, partition key tenant_id.

Besides the tenant's own fields the item carries the state that makes the admin operations safe
to retry: the ``onboarding`` mark, the tenant's ``incarnation``, its list of key hashes
(``key_hashes``) and, while it is offboarded, ``purge_after``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, cast, get_args

from boto3.dynamodb.conditions import Attr

from tenantry import aws, settings
from tenantry.errors import Conflict, NotFound
from tenantry.stores import values
from tenantry.stores.pagination import decode_token, encode_token
from tenantry.stores.updates import conditional, set_update

TenantStatus = Literal["active", "suspended", "offboarding"]
ACTIVE: Final[TenantStatus] = "active"
SUSPENDED: Final[TenantStatus] = "suspended"
# A tenant being offboarded keeps its item, in this state, until the final purge deletes it: the
# id is refused meanwhile, and the admin API treats the tenant as gone.
OFFBOARDING: Final[TenantStatus] = "offboarding"
_STATUSES: Final = frozenset(get_args(TenantStatus))

KEY_REGISTRY = "key_hashes"
# A tenant item's incarnation: a random token set when the tenant is created. Its keys carry it, so
# a request authorized for an offboarded tenant can never write into a new tenant with the same id.
INCARNATION = "incarnation"
# A tenant item carries this attribute from its creation until its onboarding answered: a retry
# of the onboarding then resumes it instead of answering 409 tenant_exists.
ONBOARDING = "onboarding"


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """One tenant, as stored (``config`` with plain numbers). ``onboarding``: when its onboarding
    started, until it answered; ``key_hashes``: its keys, listed before each key exists, so a
    consistent read of this record finds every key; ``purge_after`` (epoch seconds): when an
    offboarding's final purge is due."""

    tenant_id: str
    name: str
    tier: str
    status: TenantStatus
    created_at: str
    updated_at: str
    config: Mapping[str, Any] = field(default_factory=dict)
    incarnation: str = ""
    onboarding: str | None = None
    key_hashes: frozenset[str] = frozenset()
    purge_after: int | None = None

    @property
    def is_onboarding(self) -> bool:
        return bool(self.onboarding)


@dataclass(frozen=True, slots=True)
class TenantChanges:
    """What an update sets: ``updated_at`` always, each other field when given."""

    updated_at: str
    name: str | None = None
    tier: str | None = None
    status: TenantStatus | None = None
    config: Mapping[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        """The attributes set, by name."""
        given = {
            "name": self.name,
            "tier": self.tier,
            "status": self.status,
            "config": None if self.config is None else dict(self.config),
            "updated_at": self.updated_at,
        }
        return {name: value for name, value in given.items() if value is not None}


class TenantMissingError(LookupError):
    """A change to a tenant item that does not exist (deleted meanwhile): nothing was written."""


class TenantStore(Protocol):
    """The tenant operations the logic makes (tenantry.tenancy, tenantry.usage): :data:`DYNAMODB`
    in the functions, an in-memory fake (tests/fakes/tenants.py) where DynamoDB is not the point.
    Every write is safe to send again."""

    def create(self, tenant: TenantRecord) -> None:
        """Insert a new tenant; ``Conflict`` tenant_exists when the id is taken."""

    def get(self, tenant_id: str) -> TenantRecord | None:
        """The tenant (offboarding ones too), read consistently."""

    def update(self, tenant_id: str, changes: TenantChanges) -> TenantRecord:
        """Apply ``changes`` and return the tenant as it is now; ``NotFound`` tenant_not_found when
        there is no such tenant or it is being offboarded."""

    def register_key(self, tenant_id: str, key_hash: str) -> None:
        """List a key on the tenant, before the key exists; ``NotFound`` when the tenant is gone
        or being offboarded."""

    def unregister_key(self, tenant_id: str, key_hash: str) -> None:
        """Drop an abandoned key from the tenant's list (a tenant that is gone has nothing to drop)."""

    def finish_onboarding(self, tenant_id: str) -> None:
        """Remove the onboarding mark: a retry of the onboarding is now a 409.
        :class:`TenantMissingError` when there is no such tenant."""

    def delete_unfinished(self, tenant_id: str) -> None:
        """Delete the tenant if it is still marked onboarding (nothing else of it exists yet)."""

    def list_page(
        self, *, tier: str | None, status: str | None, limit: int, next_token: str | None
    ) -> tuple[list[TenantRecord], str | None]:
        """Up to ``limit`` tenants (of ``tier``, of ``status``; offboarding ones only when asked
        for by status) and the token of the next page, or None."""

    def mark_offboarding(self, tenant_id: str, purge_after: int) -> TenantRecord | None:
        """Put the tenant in the offboarding state (again, on a retry) with the time of its final
        purge; the tenant as it is now, or None when there is no such tenant."""

    def delete_offboarded(self, tenant_id: str, incarnation: str) -> bool:
        """Delete the tenant if it is still that incarnation's offboarding marker; whether it did."""


def require(store: TenantStore, tenant_id: str) -> TenantRecord:
    """The tenant; ``NotFound`` when it does not exist or is being offboarded."""
    tenant = store.get(tenant_id)
    if tenant is None or tenant.status == OFFBOARDING:
        raise NotFound(f"No tenant {tenant_id!r}", code="tenant_not_found")
    return tenant


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _table() -> Any:
    return aws.data_table(settings.table_name(settings.TENANTS_TABLE))


def _record(item: Mapping[str, Any]) -> TenantRecord:
    """A stored item as a record: the one place its attribute names and Decimals are read."""
    status = item.get("status")
    if status not in _STATUSES:
        raise ValueError(f"tenant item {item.get('tenant_id')!r} has status {status!r}")
    onboarding = item.get(ONBOARDING)
    purge_after = item.get("purge_after")
    return TenantRecord(
        tenant_id=str(item["tenant_id"]),
        name=str(item.get("name", "")),
        tier=str(item.get("tier", "")),
        status=cast("TenantStatus", status),
        created_at=str(item.get("created_at", "")),
        updated_at=str(item.get("updated_at", "")),
        config=values.plain(dict(item.get("config") or {})),
        incarnation=str(item.get(INCARNATION, "")),
        onboarding=None if onboarding is None else str(onboarding),
        key_hashes=frozenset(str(key_hash) for key_hash in item.get(KEY_REGISTRY, ())),
        purge_after=None if purge_after is None else values.as_int(purge_after),
    )


def _item(tenant: TenantRecord) -> dict[str, Any]:
    """A record as the item to put: optional attributes only when set (DynamoDB stores no empty
    set)."""
    item: dict[str, Any] = {
        "tenant_id": tenant.tenant_id,
        "name": tenant.name,
        "tier": tenant.tier,
        "status": tenant.status,
        "config": dict(tenant.config),
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
    }
    optional = {
        INCARNATION: tenant.incarnation or None,
        ONBOARDING: tenant.onboarding,
        KEY_REGISTRY: set(tenant.key_hashes) or None,
        "purge_after": tenant.purge_after,
    }
    item.update({name: value for name, value in optional.items() if value is not None})
    return item


def _not_found(tenant_id: str) -> NotFound:
    return NotFound(f"No tenant {tenant_id!r}", code="tenant_not_found")


class DynamoDBTenants:
    """:class:`TenantStore` over the Tenants table, with the request's data access (tenantry.aws)."""

    def create(self, tenant: TenantRecord) -> None:
        created = conditional(
            lambda: _table().put_item(
                Item=_item(tenant), ConditionExpression="attribute_not_exists(tenant_id)"
            )
        )
        if created is None:
            raise Conflict(f"Tenant {tenant.tenant_id!r} already exists", code="tenant_exists")

    def get(self, tenant_id: str) -> TenantRecord | None:
        item = _table().get_item(Key={"tenant_id": tenant_id}, ConsistentRead=True).get("Item")
        return None if item is None else _record(item)

    def update(self, tenant_id: str, changes: TenantChanges) -> TenantRecord:
        update = set_update(changes.fields())
        update.names["#status_now"] = "status"
        update.values[":offboarding"] = OFFBOARDING
        # An offboarding tenant is gone for every change but its own offboarding.
        condition = "attribute_exists(tenant_id) AND #status_now <> :offboarding"
        request = update.request({"tenant_id": tenant_id}, condition)
        response = conditional(lambda: _table().update_item(**request, ReturnValues="ALL_NEW"))
        if response is None:
            raise _not_found(tenant_id)
        return _record(response["Attributes"])

    def register_key(self, tenant_id: str, key_hash: str) -> None:
        if not self._change_key_list(tenant_id, "ADD", key_hash):
            raise _not_found(tenant_id)

    def unregister_key(self, tenant_id: str, key_hash: str) -> None:
        self._change_key_list(tenant_id, "DELETE", key_hash)  # a tenant that is gone: nothing to drop

    def _change_key_list(self, tenant_id: str, action: str, key_hash: str) -> bool:
        names = {"#keys": KEY_REGISTRY}
        expression_values: dict[str, Any] = {":hash": {key_hash}}
        condition = "attribute_exists(tenant_id)"  # never create a stub tenant
        if action == "ADD":
            # No new key for a tenant being offboarded (a rotation racing the offboarding fails here).
            names["#status"] = "status"
            expression_values[":offboarding"] = OFFBOARDING
            condition += " AND #status <> :offboarding"
        changed = conditional(
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                UpdateExpression=f"{action} #keys :hash",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expression_values,
                ConditionExpression=condition,
            )
        )
        return changed is not None

    def finish_onboarding(self, tenant_id: str) -> None:
        finished = conditional(
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                UpdateExpression="REMOVE #onboarding",
                ExpressionAttributeNames={"#onboarding": ONBOARDING},
                ConditionExpression="attribute_exists(tenant_id)",
            )
        )
        if finished is None:
            raise TenantMissingError(tenant_id)

    def delete_unfinished(self, tenant_id: str) -> None:
        conditional(  # a tenant whose onboarding answered (or that is gone) stays as it is
            lambda: _table().delete_item(
                Key={"tenant_id": tenant_id},
                ConditionExpression="attribute_exists(#onboarding)",
                ExpressionAttributeNames={"#onboarding": ONBOARDING},
            )
        )

    def list_page(
        self, *, tier: str | None, status: str | None, limit: int, next_token: str | None
    ) -> tuple[list[TenantRecord], str | None]:
        """A scan, filtered; the token resumes where the page stopped."""
        condition: Any = None
        if tier is not None:
            condition = Attr("tier").eq(tier)
        # Offboarding tenants are gone for the admin API (their id is refused until the final purge).
        by_status = Attr("status").eq(status) if status is not None else Attr("status").ne(OFFBOARDING)
        condition = by_status if condition is None else condition & by_status
        start = decode_token(next_token)
        items: list[dict[str, Any]] = []
        while True:
            kwargs: dict[str, Any] = {"Limit": limit - len(items), "FilterExpression": condition}
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = _table().scan(**kwargs)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start or len(items) >= limit:
                break
        if start is not None and len(items) >= limit:
            start = {"tenant_id": items[-1]["tenant_id"]}
        return [_record(item) for item in items], encode_token(start)

    def mark_offboarding(self, tenant_id: str, purge_after: int) -> TenantRecord | None:
        response = conditional(
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                UpdateExpression="SET #status = :offboarding, purge_after = :after, updated_at = :now",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":offboarding": OFFBOARDING,
                    ":after": purge_after,
                    ":now": _iso_now(),
                },
                ConditionExpression="attribute_exists(tenant_id)",
                ReturnValues="ALL_NEW",
            )
        )
        return None if response is None else _record(response["Attributes"])

    def delete_offboarded(self, tenant_id: str, incarnation: str) -> bool:
        expression_values: dict[str, str] = {":offboarding": OFFBOARDING}
        if incarnation:
            same = "#incarnation = :incarnation"
            expression_values[":incarnation"] = incarnation
        else:  # a tenant created before incarnations existed
            same = "attribute_not_exists(#incarnation)"
        deleted = conditional(
            lambda: _table().delete_item(
                Key={"tenant_id": tenant_id},
                ConditionExpression=f"#status = :offboarding AND {same}",
                ExpressionAttributeNames={"#status": "status", "#incarnation": INCARNATION},
                ExpressionAttributeValues=expression_values,
            )
        )
        return deleted is not None


DYNAMODB: Final = DynamoDBTenants()
