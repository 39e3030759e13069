"""TenantDataRole as IAM evaluates it: the policy in template.yaml, for tenant A against tenant B's key.

The translated template's role, evaluated with tooling/iam_policy.py (the IAM test tier's evaluator)
under each request's condition context: the session's ``TenantId`` tag and the request's
``dynamodb:LeadingKeys``. The IAM tier (tests/iam) replays every recorded tenant-scoped call the
same way; this module checks the policy's shape on its own, without recorded calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from local import template
from tooling import iam_policy
from tooling.sam_translate import translated_template

ACCOUNT = "123456789012"
REGION = "us-east-1"
TABLES = (
    "TenantsTable",
    "UsageTable",
    "EventsTable",
    "ConsumersTable",
    "ConversationsTable",
    "IdempotencyTable",
)
ITEM_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)


def table_arn(logical_id: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical_id}"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed(action: str, resource: str, tenant: str | None, leading_keys: list[str] | None) -> bool:
    context: dict[str, Any] = {} if tenant is None else {"aws:PrincipalTag/TenantId": tenant}
    if leading_keys is not None:
        context["dynamodb:LeadingKeys"] = leading_keys
    statements = iam_policy.named_role_statements(translated_template(), "TenantDataRole")
    return iam_policy.evaluate(statements, action, resource, context).allowed


# ---------------------------------------------------------------------------------- tenant A vs B


@pytest.mark.parametrize(
    ("action", "table"),
    [
        ("dynamodb:GetItem", "TenantsTable"),
        ("dynamodb:BatchGetItem", "UsageTable"),
        ("dynamodb:UpdateItem", "UsageTable"),
        ("dynamodb:Query", "EventsTable"),
        ("dynamodb:PutItem", "EventsTable"),
        ("dynamodb:PutItem", "ConsumersTable"),
        ("dynamodb:BatchWriteItem", "ConversationsTable"),
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:PutItem", "IdempotencyTable"),
    ],
)
def test_tenant_a_reaches_its_own_partition(action: str, table: str) -> None:
    assert allowed(action, table_arn(table), "acme", ["acme"])


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("action", ITEM_ACTIONS)
def test_tenant_a_credentials_never_reach_tenant_b_key(table: str, action: str) -> None:
    # Tenant B's key alone, or mixed into a batch with A's
    assert not allowed(action, table_arn(table), "acme", ["globex"])
    assert not allowed(action, table_arn(table), "acme", ["acme", "globex"])


def test_a_tenant_never_writes_its_tenant_record() -> None:
    # Tier and status are the admin API's: a scoped session may read its record, not change it
    for action in (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ):
        assert not allowed(action, table_arn("TenantsTable"), "acme", ["acme"])


def test_indexes_are_scoped_too() -> None:
    index = table_arn("ConversationsTable") + "/index/by-activity"
    assert allowed("dynamodb:Query", index, "acme", ["acme"])
    assert not allowed("dynamodb:Query", index, "acme", ["globex"])


def test_scan_and_keyless_requests_are_never_allowed() -> None:
    for table in TABLES:
        assert not allowed("dynamodb:Scan", table_arn(table), "acme", None)
        # ForAllValues holds vacuously without keys: the Null condition is what refuses
        for action in ITEM_ACTIONS:
            assert not allowed(action, table_arn(table), "acme", None)
        assert not allowed("dynamodb:PartiQLSelect", table_arn(table), "acme", ["acme"])


def test_a_session_without_the_tenant_tag_reaches_nothing() -> None:
    for table in TABLES:
        for action in ITEM_ACTIONS:
            assert not allowed(action, table_arn(table), None, ["acme"])


def test_the_key_table_and_unknown_tables_are_out_of_reach() -> None:
    for table in ("ApiKeysTable", "SomeOtherTable"):
        assert not allowed("dynamodb:GetItem", table_arn(table), "acme", ["acme"])
    by_tenant = table_arn("ApiKeysTable") + "/index/by-tenant"
    assert not allowed("dynamodb:Query", by_tenant, "acme", ["acme"])


def test_every_statement_is_conditioned_on_the_leading_key() -> None:
    for statement in iam_policy.named_role_statements(translated_template(), "TenantDataRole"):
        assert statement.effect == "Allow"
        assert statement.conditions == {
            "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:PrincipalTag/TenantId}"]},
            "Null": {"dynamodb:LeadingKeys": "false"},
        }, statement.label


def test_every_registered_tenant_table_is_granted() -> None:
    from tenantry.registry import registered_tables

    assert {entry.logical_id for entry in registered_tables()} == set(TABLES)
    for table in TABLES:
        assert any(allowed(action, table_arn(table), "acme", ["acme"]) for action in ITEM_ACTIONS), table


# ---------------------------------------------------------------------------------- trust and functions


def test_only_the_tenant_facing_function_roles_may_assume_it_and_only_with_the_tenant_tag() -> None:
    trust = template.template()["Resources"]["TenantDataRole"]["Properties"]["AssumeRolePolicyDocument"]
    principals: set[str] = set()
    actions: set[str] = set()
    for statement in trust["Statement"]:
        assert statement["Effect"] == "Allow"
        principals |= {item["Fn::GetAtt"][0] for item in _listed(statement["Principal"]["AWS"])}
        actions |= set(_listed(statement["Action"]))
        if "sts:TagSession" in _listed(statement["Action"]):
            conditions = statement["Condition"]
            assert conditions["ForAllValues:StringEquals"] == {"aws:TagKeys": ["TenantId"]}
            assert conditions["StringLike"] == {"aws:RequestTag/TenantId": "?*"}
    assert principals == {"EventsFunctionRole", "ChatFunctionRole", "TenantsFunctionRole"}
    assert actions == {"sts:AssumeRole", "sts:TagSession"}


def role_statements(role: str) -> list[dict[str, Any]]:
    policies = translated_template()["Resources"][role]["Properties"].get("Policies") or []
    return [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("role", ["EventsFunctionRole", "ChatFunctionRole"])
def test_tenant_facing_functions_lost_direct_access_to_tenant_tables(role: str) -> None:
    dynamodb = [
        statement
        for statement in role_statements(role)
        if any(str(action).startswith("dynamodb:") for action in _listed(statement["Action"]))
    ]
    assert dynamodb == []
    assume = [
        statement for statement in role_statements(role) if "sts:AssumeRole" in _listed(statement["Action"])
    ]
    assert len(assume) == 1
    assert set(_listed(assume[0]["Action"])) == {"sts:AssumeRole", "sts:TagSession"}
    assert assume[0]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-tenant-data"
    }


def test_the_role_the_functions_name_is_the_role_the_template_creates() -> None:
    role = template.template()["Resources"]["TenantDataRole"]["Properties"]
    assert role["RoleName"] == {"Fn::Sub": "${AWS::StackName}-tenant-data"}
    for function in ("EventsFunction", "ChatFunction", "TenantsFunction"):
        env = template.template()["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env["TENANT_DATA_ROLE_ARN"] == {
            "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-tenant-data"
        }
        assert env["TENANT_SESSION_SECONDS"] == {"Ref": "TenantSessionSeconds"}


def test_chat_tenant_isolation_is_a_parameter_that_reaches_the_lambda_function() -> None:
    parameter = template.template()["Parameters"]["ChatTenantIsolation"]
    assert parameter["Default"] == "NONE"
    assert parameter["AllowedValues"] == ["NONE", "PER_TENANT"]
    chat = translated_template()["Resources"]["ChatFunction"]
    assert chat["Type"] == "AWS::Lambda::Function"
    assert chat["Properties"]["TenancyConfig"] == {
        "Fn::If": ["ChatIsolatedPerTenant", {"TenantIsolationMode": "PER_TENANT"}, {"Ref": "AWS::NoValue"}]
    }
