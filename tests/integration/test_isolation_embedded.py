"""The embedded stack's STS and DynamoDB: tenant sessions, and AccessDenied outside their partition.

Both ways in are checked: boto3 in this process (handed straight to the server's WSGI chain) and
a client of another process (over loopback HTTP, as ``sam local invoke`` or the CLI reach it).
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from local import template
from local.embedded import EmbeddedAws
from tenantry import aws, caches, credentials
from tenantry.stores import events as store

ROLE_ARN = "arn:aws:iam::123456789012:role/tenantry-local-tenant-data"


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedAws]:
    server = EmbeddedAws()
    server.start()
    try:
        for variable, value in server.client_env().items():
            monkeypatch.setenv(variable, value)
        for env_var, logical_id in template.table_env_vars().items():
            monkeypatch.setenv(env_var, template.local_table_name(logical_id))
        monkeypatch.setenv(credentials.ROLE_ARN_ENV, ROLE_ARN)
        caches.clear_all()
        for tenant_id in ("acme", "globex"):
            event = store.StoredEvent("t", "{}", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
            store.append(tenant_id, 0, [event], "2026-01-01T00:00:00Z")
        yield server
    finally:
        caches.clear_all()
        server.stop()


def test_a_store_with_tenant_a_session_and_tenant_b_id_gets_access_denied(embedded: EmbeddedAws) -> None:
    # Given acme's session from the embedded STS
    vendor = credentials.vendor()
    assert vendor is not None
    with aws.tenant_scope(vendor.access_for("acme")):
        # When the store reads acme's own stream, it works
        assert store.get_event("acme", 1) is not None
        # When it is handed globex's id, DynamoDB refuses
        with pytest.raises(ClientError) as raised:
            store.get_event("globex", 1)
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
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=session["AccessKeyId"],
        aws_secret_access_key=session["SecretAccessKey"],
        aws_session_token=session["SessionToken"],
    )
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
    unscoped = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=plain["AccessKeyId"],
        aws_secret_access_key=plain["SecretAccessKey"],
        aws_session_token=plain["SessionToken"],
    )
    assert "Item" in unscoped.get_item(
        TableName=events, Key={"tenant_id": {"S": "globex"}, "position": {"N": "1"}}
    )
