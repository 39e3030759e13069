"""The Tenants table: one item per tenant, partition key tenant_id.

Besides the tenant's own fields the item carries the state that makes the admin operations safe
to retry: the ``onboarding`` mark, the tenant's ``incarnation``, its list of key hashes
(``key_hashes``) and, while it is offboarded, ``purge_after``. It also holds the tenant's usage
identity (``usage_key_id`` and ``usage_key``: its API Gateway key, never shown), its limit
overrides (``limits``) and the count of its live keys (``live_keys``: key hash → when the key
ends, 0 for never), which the cap on live keys is checked against in one conditional write.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, cast, get_args

from boto3.dynamodb.conditions import Attr

from tenantry import aws, settings
from tenantry.errors import Conflict, NotFound, ServiceBusy
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
LIVE_KEYS = "live_keys"
LIMITS = "limits"
# How many times a counted key registration re-reads the tenant after another write won the race.
REGISTER_ATTEMPTS = 8


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
    usage_key_id: str = ""
    usage_key: str = ""
    limits: Mapping[str, int] = field(default_factory=dict)
    # None: the item predates the count (it is seeded from the tenant's keys on the next issue).
    live_keys: Mapping[str, int] | None = None

    @property
    def is_onboarding(self) -> bool:
        return bool(self.onboarding)

    def live_key_count(self, now: float) -> int:
        """Keys listed as live and not ended at ``now`` (0 when the count is not kept yet)."""
        return sum(1 for ends in (self.live_keys or {}).values() if not ends or ends > now)


@dataclass(frozen=True, slots=True)
class TenantChanges:
    """What an update sets: ``updated_at`` always, each other field when given."""

    updated_at: str
    name: str | None = None
    tier: str | None = None
    status: TenantStatus | None = None
    config: Mapping[str, Any] | None = None
    limits: Mapping[str, int] | None = None  # the whole set of overrides (empty: none)

    def fields(self) -> dict[str, Any]:
        """The attributes set, by name."""
        given = {
            "name": self.name,
            "tier": self.tier,
            "status": self.status,
            "config": None if self.config is None else dict(self.config),
            LIMITS: None if self.limits is None else dict(self.limits),
            "updated_at": self.updated_at,
        }
        return {name: value for name, value in given.items() if value is not None}


class TenantMissingError(LookupError):
    """A change to a tenant item that does not exist (deleted meanwhile): nothing was written."""


class KeyLimitReached(Conflict):
    code = "key_limit_reached"


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

    def register_key(
        self,
        tenant_id: str,
        key_hash: str,
        *,
        ends_at: int | None = None,
        cap: int | None = None,
        seed: Mapping[str, int] | None = None,
    ) -> None:
        """List a key on the tenant, before the key exists, and count it live until ``ends_at``
        (None: no end): one conditional write, so concurrent registrations never take the count
        past ``cap`` (:class:`KeyLimitReached` when it is reached; ended keys drop out of the
        count in the same write). ``seed``: the live keys to count when the item has no count
        yet. The same key again is success. ``NotFound`` when the tenant is gone or being
        offboarded."""

    def unregister_key(self, tenant_id: str, key_hash: str) -> None:
        """Drop an abandoned key from the tenant's list and count (a tenant that is gone has
        nothing to drop)."""

    def end_key(self, tenant_id: str, key_hash: str, ends_at: int | None = None) -> None:
        """The key stops counting as live at ``ends_at`` (None: now, it was revoked). A key the
        count does not hold (or a tenant that is gone) is left as it is."""

    def record_usage_key(self, tenant_id: str, usage_key_id: str, usage_key: str) -> TenantRecord:
        """Record the tenant's usage identity unless it has one; the tenant as it is now (its
        identity may be another request's). ``NotFound`` when the tenant is gone."""

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
    live_keys = item.get(LIVE_KEYS)
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
        usage_key_id=str(item.get("usage_key_id", "")),
        usage_key=str(item.get("usage_key", "")),
        limits={str(name): values.as_int(value) for name, value in (item.get(LIMITS) or {}).items()},
        live_keys=None
        if live_keys is None
        else {str(key_hash): values.as_int(ends) for key_hash, ends in live_keys.items()},
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
        "usage_key_id": tenant.usage_key_id or None,
        "usage_key": tenant.usage_key or None,
        LIMITS: dict(tenant.limits) or None,
        LIVE_KEYS: None if tenant.live_keys is None else dict(tenant.live_keys),
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

    def register_key(
        self,
        tenant_id: str,
        key_hash: str,
        *,
        ends_at: int | None = None,
        cap: int | None = None,
        seed: Mapping[str, int] | None = None,
    ) -> None:
        """Read the tenant, then write the key into its list and count on the condition that the
        count is what was read (its size, and the ended keys this write drops still there): a
        concurrent registration makes it fail, and the next round counts that key too."""
        for _ in range(REGISTER_ATTEMPTS):
            current = self.get(tenant_id)
            if current is None or current.status == OFFBOARDING:
                raise _not_found(tenant_id)
            if key_hash in current.key_hashes:
                return  # this key again (a send whose answer was lost)
            counted = dict(current.live_keys if current.live_keys is not None else seed or {})
            now = time.time()
            ended = sorted(other for other, ends in counted.items() if ends and ends <= now)
            if cap is not None and len(counted) - len(ended) >= cap:
                raise KeyLimitReached(
                    f"Tenant {tenant_id!r} has {cap} live keys, the most it may have; revoke one first",
                    field="keys",
                )
            if self._write_counted(
                tenant_id, key_hash, ends_at=ends_at or 0, current=current, counted=counted, ended=ended
            ):
                return
        raise ServiceBusy(
            "Too many key operations on this tenant at once; retry", headers={"Retry-After": "1"}
        )

    @staticmethod
    def _write_counted(
        tenant_id: str,
        key_hash: str,
        *,
        ends_at: int,
        current: TenantRecord,
        counted: dict[str, int],
        ended: list[str],
    ) -> bool:
        names: dict[str, str] = {"#keys": KEY_REGISTRY, "#live": LIVE_KEYS, "#status": "status"}
        expression_values: dict[str, Any] = {":hash": {key_hash}, ":offboarding": OFFBOARDING}
        condition = "attribute_exists(tenant_id) AND #status <> :offboarding"
        if current.live_keys is None:
            # The first count: the whole map, written only if no other request wrote one first.
            fresh = {other: ends for other, ends in counted.items() if other not in ended}
            expression_values[":live"] = {**fresh, key_hash: ends_at}
            update = "ADD #keys :hash SET #live = :live"
            condition += " AND attribute_not_exists(#live)"
        else:
            names["#new"] = key_hash
            expression_values[":ends"] = ends_at
            expression_values[":most"] = len(counted)
            update = "ADD #keys :hash SET #live.#new = :ends"
            condition += " AND size(#live) <= :most"
            for index, other in enumerate(ended):
                names[f"#ended{index}"] = other
                condition += f" AND attribute_exists(#live.#ended{index})"
            if ended:
                update += " REMOVE " + ", ".join(f"#live.#ended{index}" for index in range(len(ended)))
        written = conditional(
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                UpdateExpression=update,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expression_values,
                ConditionExpression=condition,
            )
        )
        return written is not None

    def unregister_key(self, tenant_id: str, key_hash: str) -> None:
        """One write: the list and the count never disagree about an abandoned key (an item that
        keeps no count yet has only its list to change)."""
        for update, condition in (
            ("DELETE #keys :hash REMOVE #live.#key", "attribute_exists(#live)"),
            ("DELETE #keys :hash", "attribute_not_exists(#live)"),
        ):
            if self._unregister(tenant_id, key_hash, update, condition):
                return

    @staticmethod
    def _unregister(tenant_id: str, key_hash: str, update: str, condition: str) -> bool:
        names = {"#keys": KEY_REGISTRY, "#live": LIVE_KEYS, "#key": key_hash}
        changed = conditional(
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                UpdateExpression=update,
                ExpressionAttributeNames={
                    name: names[name] for name in set(re.findall(r"#\w+", f"{update} {condition}"))
                },
                ExpressionAttributeValues={":hash": {key_hash}},
                # never create a stub tenant (a tenant that is gone: nothing to drop)
                ConditionExpression=f"attribute_exists(tenant_id) AND {condition}",
            )
        )
        return changed is not None

    def end_key(self, tenant_id: str, key_hash: str, ends_at: int | None = None) -> None:
        names = {"#live": LIVE_KEYS, "#key": key_hash}
        if ends_at is None:
            request: dict[str, Any] = {"UpdateExpression": "REMOVE #live.#key"}
        else:
            request = {
                "UpdateExpression": "SET #live.#key = :ends",
                "ExpressionAttributeValues": {":ends": ends_at},
            }
        conditional(  # not counted (an item from before the count, or a key gone): nothing to do
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                ExpressionAttributeNames=names,
                ConditionExpression="attribute_exists(#live.#key)",
                **request,
            )
        )

    def record_usage_key(self, tenant_id: str, usage_key_id: str, usage_key: str) -> TenantRecord:
        recorded = conditional(
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                UpdateExpression="SET usage_key_id = :id, usage_key = :value",
                ConditionExpression="attribute_exists(tenant_id) AND "
                "(attribute_not_exists(usage_key_id) OR usage_key_id = :id)",
                ExpressionAttributeValues={":id": usage_key_id, ":value": usage_key},
                ReturnValues="ALL_NEW",
            )
        )
        if recorded is not None:
            return _record(recorded["Attributes"])
        current = self.get(tenant_id)
        if current is None:
            raise _not_found(tenant_id)
        return current  # another request recorded its identity first

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
