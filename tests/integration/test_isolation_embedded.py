"""The embedded stack's STS and DynamoDB: tenant sessions, and AccessDenied outside their partition.

Both ways in are checked: boto3 in this process (handed straight to the server's WSGI chain) and
a client of another process (over loopback HTTP, as ``sam local invoke`` or the CLI reach it).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local import template
from local.embedded import EmbeddedAws
from tenantry import aws, caches, credentials
from tenantry.stores import events as store

ROLE_ARN = "arn:aws:iam::123456789012:role/tenantry-local-tenant-data"


@pytest.fixture
def embedded(embedded: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> EmbeddedAws:
    """The embedded AWS, tenant data role configured (as the template's functions have it), and
    event 1 in acme's and globex's streams."""
    monkeypatch.setenv(credentials.ROLE_ARN_ENV, ROLE_ARN)
    caches.clear_all()
    for tenant_id in ("acme", "globex"):
        event = store.StoredEvent("t", "{}", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
        store.DYNAMODB.open_stream(tenant_id, "", "2026-01-01T00:00:00Z")
        store.DYNAMODB.append(tenant_id, 0, [event], "2026-01-01T00:00:00Z")
    return embedded


def _dynamodb_with(endpoint: str, session: Any) -> Any:
    """A DynamoDB client of another process, with an STS session's credentials."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=session["AccessKeyId"],
        aws_secret_access_key=session["SecretAccessKey"],
        aws_session_token=session["SessionToken"],
    )


def test_a_store_with_tenant_a_session_and_tenant_b_id_gets_access_denied(embedded: EmbeddedAws) -> None:
    # Given acme's session from the embedded STS
    vendor = credentials.vendor()
    assert vendor is not None
    with aws.tenant_scope(vendor.access_for("acme")):
        # When the store reads acme's own stream, it works
        assert store.DYNAMODB.get_event("acme", 1) is not None
        # When it is handed globex's id, DynamoDB refuses
        with pytest.raises(ClientError) as raised:
            store.DYNAMODB.get_event("globex", 1)
    assert aws.error_code(raised.value) == "AccessDeniedException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "assumed-role/tenantry-local-tenant-data/acme" in str(raised.value)
    assert len(embedded.access.sessions) == 1
    assert embedded.access.denied == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_every_transport_is_checked(embedded: EmbeddedAws, host: str) -> None:
    # 127.0.0.1 is the endpoint this process serves in process; localhost goes over the socket
    endpoint = embedded.endpoint_url.replace("127.0.0.1", host)
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
    session = sts.assume_role(
        RoleArn=ROLE_ARN, RoleSessionName="acme", Tags=[{"Key": "TenantId", "Value": "acme"}]
    )["Credentials"]
    dynamodb = _dynamodb_with(endpoint, session)
    events = template.local_table_name("EventsTable")
    own = dynamodb.get_item(TableName=events, Key={"tenant_id": {"S": "acme"}, "position": {"N": "1"}})
    assert own["Item"]["tenant_id"] == {"S": "acme"}
    for call in (
        lambda: dynamodb.get_item(
            TableName=events, Key={"tenant_id": {"S": "globex"}, "position": {"N": "1"}}
        ),
        lambda: dynamodb.scan(TableName=events),
        lambda: dynamodb.describe_table(TableName=events),
    ):
        with pytest.raises(ClientError) as raised:
            call()
        assert aws.error_code(raised.value) == "AccessDeniedException"
    # A session without the tenant tag is not limited here (the function roles are not modelled)
    plain = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="plain")["Credentials"]
    unscoped = _dynamodb_with(endpoint, plain)
    assert "Item" in unscoped.get_item(
        TableName=events, Key={"tenant_id": {"S": "globex"}, "position": {"N": "1"}}
    )
