"""Cached boto3 clients and resources, one per process, so warm invocations reuse connections.

Two kinds of DynamoDB access exist, and stores get theirs from one place:

- :func:`data_client`, :func:`data_resource` and :func:`data_table` serve tenant data. Inside a
  request scope opened by the HTTP glue (:func:`tenant_scope`) they are the tenant's scoped
  clients, whose credentials IAM limits to the tenant's partition key (``dynamodb:LeadingKeys``);
  outside one (admin routes, metering, offboarding) they are the function role's clients.
- :func:`dynamodb_client`, :func:`dynamodb` and :func:`table` are always the function role's: for
  tables that are not keyed by tenant (the key table) and for table-level calls (health).

Stores pass plain Python values (str, int, Decimal, …) and get them back: through a resource's
``Table`` for item calls, and through :func:`data_transact_write` for transactions.

Tests and the local stack swap the AWS backend (moto) under the process: :func:`tenantry.caches.clear_all`
drops every cached client (and every other cache of the layer, tenant credentials included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeSerializer

from tenantry import caches, clientconfig

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_dynamodb import DynamoDBClient, DynamoDBServiceResource
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_sts import STSClient

# Short timeouts and the standard retry mode, from the one shared setting (tenantry.clientconfig).
CONFIG = clientconfig.config(clientconfig.API)


@dataclass(frozen=True, slots=True)
class DataAccess:
    """One set of credentials' DynamoDB access: a plain client and a resource. The resource's own
    ``meta.client`` (same credentials) takes plain Python values for every call, transactions
    included, and cannot take typed items; the plain client takes typed items only: Powertools'
    idempotency layer needs one (it serializes its records itself), and
    :func:`data_transact_write` sends the plain-valued transactions it converted through it."""

    client: DynamoDBClient
    resource: DynamoDBServiceResource
    # Table objects of this resource by name: boto3 builds a Table's class from the resource
    # model each time ``Table(name)`` is called, which cost more than the request itself.
    tables: dict[str, Table] = field(default_factory=dict, compare=False, repr=False)

    def table(self, name: str) -> Table:
        found = self.tables.get(name)
        if found is None:
            found = self.tables[name] = self.resource.Table(name)
        return found


# The current request tenant's scoped access, or None: the function role's clients.
_scoped: ContextVar[DataAccess | None] = ContextVar("tenantry_scoped_dynamodb", default=None)


@cache
def dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=CONFIG)


@cache
def dynamodb() -> DynamoDBServiceResource:
    return boto3.resource("dynamodb", config=CONFIG)


@cache
def table(name: str) -> Table:
    return dynamodb().Table(name)


@cache
def apigateway() -> APIGatewayClient:
    return boto3.client("apigateway", config=CONFIG)


@cache
def scheduler() -> Any:  # EventBridge Scheduler (no stubs installed for it)
    return boto3.client("scheduler", config=CONFIG)


@cache
def sts() -> STSClient:
    return boto3.client("sts", config=CONFIG)


def data_resource() -> DynamoDBServiceResource:
    """The DynamoDB resource for tenant data in this request: the tenant's scoped one, if any."""
    scoped = _scoped.get()
    return scoped.resource if scoped is not None else dynamodb()


def data_client() -> DynamoDBClient:
    """The low-level client for tenant data in this request (same credentials as the resource)."""
    scoped = _scoped.get()
    return scoped.client if scoped is not None else dynamodb_client()


def data_table(name: str) -> Table:
    scoped = _scoped.get()
    return scoped.table(name) if scoped is not None else table(name)


_SERIALIZER = TypeSerializer()
# The members of a transaction's operations that hold attribute values.
_VALUE_MEMBERS = ("Key", "Item", "ExpressionAttributeValues")
# The magnitude below which an int has at most DynamoDB's 38 digits, so its text is exact.
_EXACT_INTS = 10**38


def _typed(value: Any) -> Any:
    # A str or a (38-digit) int gives what the serializer makes of it, without its chain of type
    # tests and Decimal context: nearly every value of an item, ~600 in a batch of 99 events.
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int and -_EXACT_INTS < value < _EXACT_INTS:
        return {"N": str(value)}
    return _SERIALIZER.serialize(value)


def data_transact_write(items: Sequence[Mapping[str, Mapping[str, Any]]], token: str | None = None) -> None:
    """``TransactWriteItems`` with the items' keys, items and expression values in plain Python
    values, as a resource takes them, with the request's data access (:func:`data_client`).

    It converts them with boto3's own serializer, as the resource's ``meta.client`` would, but
    only where values can be: that client also deep-copies the request and walks the operation's
    whole model twice, which cost a warm publish about 0.1 ms more (docs/decisions.md).
    ``token`` is the ClientRequestToken, which makes a resent transaction that did commit a no-op.
    A cancelled transaction's reasons (``ReturnValuesOnConditionCheckFailure``) stay typed, as
    with any client: :func:`tenantry.stores.values.untyped` converts them."""
    typed: list[dict[str, Any]] = []
    for item in items:
        operation: dict[str, Any] = {}
        for kind, request in item.items():
            converted = dict(request)
            for member in _VALUE_MEMBERS:
                if member in converted:
                    converted[member] = {name: _typed(value) for name, value in converted[member].items()}
            operation[kind] = converted
        typed.append(operation)
    extra: dict[str, Any] = {"ClientRequestToken": token} if token is not None else {}
    data_client().transact_write_items(TransactItems=typed, **extra)  # type: ignore[arg-type]


@contextlib.contextmanager
def tenant_scope(access: DataAccess | None) -> Iterator[None]:
    """Within this block, the data_* accessors use ``access`` (None: the function role's)."""
    token = _scoped.set(access)
    try:
        yield
    finally:
        _scoped.reset(token)


@caches.register
def _forget_clients() -> None:
    for cached in (dynamodb_client, dynamodb, table, apigateway, scheduler, sts):
        cached.cache_clear()


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError, or an empty string."""
    response: Any = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
