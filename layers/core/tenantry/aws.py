"""Cached boto3 clients and resources, one per process, so warm invocations reuse connections.

Tests and the local stack swap the AWS backend (moto) under the process, so :func:`reset` drops
every cached client.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

from tenantry import clientconfig

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_dynamodb import DynamoDBClient, DynamoDBServiceResource
    from mypy_boto3_dynamodb.service_resource import Table

# Short timeouts and the standard retry mode, from the one shared setting (tenantry.clientconfig).
_CONFIG = clientconfig.config(clientconfig.API)


@cache
def dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=_CONFIG)


@cache
def dynamodb() -> DynamoDBServiceResource:
    return boto3.resource("dynamodb", config=_CONFIG)


@cache
def table(name: str) -> Table:
    return dynamodb().Table(name)


@cache
def apigateway() -> APIGatewayClient:
    return boto3.client("apigateway", config=_CONFIG)


def reset() -> None:
    """Forget every cached client (tests and hot reload switch backends under us)."""
    for cached in (dynamodb_client, dynamodb, table, apigateway):
        cached.cache_clear()


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError, or an empty string."""
    response: Any = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
