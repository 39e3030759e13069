"""The IAM test tier's own parts: the policy evaluator and the call → authorization mapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import aws_calls
from tooling import iam_policy
from tooling.sam_translate import translate, translated_template

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/"


def _statement(effect: str = "Allow", **fields: Any) -> iam_policy.Statement:
    return iam_policy.Statement(
        effect=effect,
        actions=tuple(fields.get("actions", ())),
        not_actions=tuple(fields.get("not_actions", ())),
        resources=tuple(fields.get("resources", ())),
        not_resources=tuple(fields.get("not_resources", ())),
        has_condition=fields.get("has_condition", False),
        sid=fields.get("sid", "S"),
        origin="P",
        managed=False,
    )


def test_an_allow_with_wildcards_grants_matching_actions_and_resources_only() -> None:
    # Given an Allow of dynamodb:Get* on one table's indexes
    statements = [_statement(actions=["dynamodb:Get*"], resources=[ARN + "T/index/*"])]
    # Then action matching ignores case and resource matching does not
    assert iam_policy.evaluate(statements, "DynamoDB:GetItem", ARN + "T/index/by-x").allowed
    assert not iam_policy.evaluate(statements, "dynamodb:GetItem", ARN + "T").allowed
    assert not iam_policy.evaluate(statements, "dynamodb:GetItem", ARN + "t/index/by-x").allowed
    assert not iam_policy.evaluate(statements, "dynamodb:PutItem", ARN + "T/index/by-x").allowed
    # And "?" matches one character
    single = [_statement(actions=["dynamodb:?etItem"], resources=[ARN + "T?"])]
    assert iam_policy.evaluate(single, "dynamodb:GetItem", ARN + "T1").allowed
    assert not iam_policy.evaluate(single, "dynamodb:GetItem", ARN + "T12").allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    statements = [
        _statement(actions=["dynamodb:*"], resources=["*"]),
        _statement("Deny", actions=["dynamodb:DeleteItem"], resources=[ARN + "T"], sid="NoDelete"),
    ]
    decision = iam_policy.evaluate(statements, "dynamodb:DeleteItem", ARN + "T")
    assert decision == iam_policy.Decision(False, "explicitly denied by P/NoDelete")
    assert iam_policy.evaluate(statements, "dynamodb:DeleteItem", ARN + "U").allowed


def test_not_action_and_not_resource_exclude() -> None:
    statements = [
        _statement(not_actions=["dynamodb:Delete*"], resources=["*"], not_resources=[ARN + "Secret"])
    ]
    assert iam_policy.evaluate(statements, "dynamodb:GetItem", ARN + "T").allowed
    assert not iam_policy.evaluate(statements, "dynamodb:DeleteItem", ARN + "T").allowed
    assert not iam_policy.evaluate(statements, "dynamodb:GetItem", ARN + "Secret").allowed


def test_nothing_is_allowed_by_default_and_a_conditional_allow_is_not_counted() -> None:
    assert iam_policy.evaluate([], "dynamodb:GetItem", ARN + "T") == iam_policy.Decision(
        False, "no statement allows it"
    )
    conditional = [_statement(actions=["dynamodb:GetItem"], resources=["*"], has_condition=True)]
    decision = iam_policy.evaluate(conditional, "dynamodb:GetItem", ARN + "T")
    assert not decision.allowed
    assert "Condition" in decision.reason


def _tiny_template(policies: list[Any]) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Parameters": {"ParamName": {"Type": "String", "Default": "app/key"}},
        "Conditions": {"Yes": {"Fn::Equals": ["a", "a"]}},
        "Resources": {
            "Items": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            },
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "s3://bucket/fn",
                    "Handler": "app.handler",
                    "Runtime": "python3.13",
                    "Policies": policies,
                },
            },
        },
    }


def test_sam_policy_templates_and_intrinsics_resolve_to_the_tables_arns() -> None:
    # Given a function with a SAM policy template, a !Sub/!GetAtt statement and an SSM template
    tpl = translate(
        _tiny_template(
            [
                {"DynamoDBReadPolicy": {"TableName": {"Ref": "Items"}}},
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "dynamodb:UpdateItem",
                            "Resource": {"Fn::If": ["Yes", {"Fn::GetAtt": ["Items", "Arn"]}, "*"]},
                        }
                    ]
                },
                {"SSMParameterReadPolicy": {"ParameterName": {"Ref": "ParamName"}}},
            ]
        )
    )
    statements = iam_policy.role_statements(tpl, "Fn")
    # Then the table, its indexes and the parameter are addressed by their ARNs
    assert iam_policy.evaluate(statements, "dynamodb:Query", ARN + "Items/index/by-x").allowed
    assert iam_policy.evaluate(statements, "dynamodb:UpdateItem", ARN + "Items").allowed
    assert not iam_policy.evaluate(statements, "dynamodb:UpdateItem", ARN + "Items/index/by-x").allowed
    assert not iam_policy.evaluate(statements, "dynamodb:PutItem", ARN + "Items").allowed
    parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/app/key"
    assert iam_policy.evaluate(statements, "ssm:GetParameter", parameter).allowed
    # And the runtime's managed policies are there (logs), marked as managed
    assert any(s.managed and "logs:PutLogEvents" in s.actions for s in statements)


def test_a_grant_hint_is_a_sub_the_template_can_take() -> None:
    arn = ARN + "ConversationsTable/index/by-activity"
    assert iam_policy.as_template_sub(arn, {"ConversationsTable", "Conversations"}) == (
        '!Sub "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:'
        'table/${ConversationsTable}/index/by-activity"'
    )


# ---------------------------------------------------------------------- recording real botocore calls
@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Path]:
    with aws_calls.recording(tmp_path, {"ItemsTable", "OtherTable", "TenantsFunction"}):
        yield tmp_path


def _recorded(folder: Path) -> set[tuple[str, str, str]]:
    return {(c.function, c.action, c.resource) for c in aws_calls.read_calls(folder)}


def test_calls_are_recorded_per_function_as_iam_authorizes_them(recorder: Path) -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for name in ("stack-ItemsTable", "stack-OtherTable"):
            client.create_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        # When a function writes two tables in one transaction and queries an index
        with aws_calls.acting_as("TenantsFunction"):
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "stack-ItemsTable", "Item": {"k": {"S": "1"}}}},
                    {
                        "ConditionCheck": {
                            "TableName": "stack-OtherTable",
                            "Key": {"k": {"S": "1"}},
                            "ConditionExpression": "attribute_not_exists(k)",
                        }
                    },
                ]
            )
            with pytest.raises(client.exceptions.ClientError):
                client.query(
                    TableName="stack-ItemsTable",
                    IndexName="by-x",
                    KeyConditionExpression="k = :k",
                    ExpressionAttributeValues={":k": {"S": "1"}},
                )
        # And something outside any function calls too
        client.get_item(TableName="stack-ItemsTable", Key={"k": {"S": "1"}})
    # Then the function's calls are recorded by item-level action, with logical table names
    assert _recorded(recorder) == {
        ("TenantsFunction", "dynamodb:PutItem", ARN + "ItemsTable"),
        ("TenantsFunction", "dynamodb:ConditionCheckItem", ARN + "OtherTable"),
        ("TenantsFunction", "dynamodb:Query", ARN + "ItemsTable/index/by-x"),
    }


def test_an_api_key_created_with_tags_needs_put_on_tags(recorder: Path) -> None:
    with mock_aws(), aws_calls.acting_as("TenantsFunction"):
        client = boto3.client("apigateway", region_name="us-east-1")
        key = client.create_api_key(name="k", value="v" * 30, enabled=True, tags={"tenant_id": "acme"})
        client.get_api_key(apiKey=key["id"])
    recorded = _recorded(recorder)
    assert ("TenantsFunction", "apigateway:POST", "arn:aws:apigateway:us-east-1::/apikeys") in recorded
    assert (
        "TenantsFunction",
        "apigateway:GET",
        f"arn:aws:apigateway:us-east-1::/apikeys/{key['id']}",
    ) in recorded
    tags = [r for (_, action, r) in recorded if action == "apigateway:PUT"]
    assert len(tags) == 1 and tags[0].startswith("arn:aws:apigateway:us-east-1::/tags/arn%3Aaws%3Aapigateway")


def test_the_template_grants_the_tenants_function_the_tag_put_it_needs() -> None:
    statements = iam_policy.role_statements(translated_template(), "TenantsFunction")
    tags = "arn:aws:apigateway:us-east-1::/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Fapikeys%2FNEW"
    assert iam_policy.evaluate(statements, "apigateway:PUT", tags).allowed
    assert not iam_policy.evaluate(
        statements, "apigateway:PUT", "arn:aws:apigateway:us-east-1::/restapis/x"
    ).allowed


def test_records_from_several_processes_are_merged_without_duplicates(tmp_path: Path) -> None:
    call = {
        "function": "F",
        "action": "dynamodb:GetItem",
        "resource": ARN + "T",
        "operation": "GetItem",
        "test": "",
    }
    (tmp_path / "calls-1.jsonl").write_text(json.dumps(call) + "\n", encoding="utf-8")
    (tmp_path / "calls-2.jsonl").write_text(
        json.dumps(call) + "\n" + json.dumps({**call, "function": "G"}) + "\n"
    )
    assert sorted(c.function for c in aws_calls.read_calls(tmp_path)) == ["F", "G"]


def test_ssm_sqs_and_unknown_services_are_named_as_iam_names_them() -> None:
    def body(value: dict[str, Any]) -> dict[str, Any]:
        return {"body": json.dumps(value).encode()}

    parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/tenantry/anthropic-api-key"
    assert aws_calls.authorizations("ssm", "GetParameter", body({"Name": "/tenantry/anthropic-api-key"})) == [
        ("ssm:GetParameter", parameter)
    ]
    queue_url = {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/stack-Dlq"}
    with aws_calls.recording(Path("/nonexistent-not-written"), {"Dlq"}):
        assert aws_calls.authorizations("sqs", "SendMessage", body(queue_url)) == [
            ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:Dlq")
        ]
    # A service without a mapping needs "*": the IAM check then says to add one
    assert aws_calls.authorizations("kinesis", "PutRecord", body({})) == [("kinesis:PutRecord", "*")]


def test_a_dead_letter_queue_and_an_sqs_event_source_are_the_runtimes_grants() -> None:
    tpl = _tiny_template([])
    tpl["Resources"]["Dlq"] = {"Type": "AWS::SQS::Queue"}
    tpl["Resources"]["Fn"]["Properties"]["DeadLetterQueue"] = {
        "Type": "SQS",
        "TargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
    }
    tpl["Resources"]["Fn"]["Properties"]["Events"] = {
        "Jobs": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Dlq", "Arn"]}}}
    }
    statements = iam_policy.role_statements(translate(tpl), "Fn")
    queue = "arn:aws:sqs:us-east-1:123456789012:Dlq"
    assert iam_policy.evaluate(statements, "sqs:SendMessage", queue).allowed
    assert iam_policy.evaluate(statements, "sqs:ReceiveMessage", queue).allowed
    # And they are not the code's grants, so no test must make those calls
    assert all(s.managed for s in statements if "sqs:SendMessage" in s.actions)


# ---------------------------------------------------------------------- conditions (issue 13)
LEADING_KEYS_CONDITION = {
    "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:PrincipalTag/TenantId}"]},
    "Null": {"dynamodb:LeadingKeys": "false"},
}


def test_conditions_are_evaluated_in_the_requests_context() -> None:
    scoped = [
        iam_policy.Statement(
            "Allow",
            ("dynamodb:GetItem",),
            (),
            (ARN + "T",),
            (),
            True,
            "Own",
            "P",
            False,
            LEADING_KEYS_CONDITION,
        )
    ]

    def decide(context: dict[str, Any] | None) -> bool:
        return iam_policy.evaluate(scoped, "dynamodb:GetItem", ARN + "T", context).allowed

    tag = {"aws:PrincipalTag/TenantId": "acme"}
    assert decide({**tag, "dynamodb:LeadingKeys": ["acme"]})
    assert not decide({**tag, "dynamodb:LeadingKeys": ["globex"]})
    assert not decide({**tag, "dynamodb:LeadingKeys": ["acme", "globex"]})
    assert not decide(tag)  # no keys: Null refuses what ForAllValues would let through
    assert not decide({"dynamodb:LeadingKeys": ["acme"]})  # no tag: the variable matches nothing
    assert not decide(None)  # without a context a conditional Allow never counts


def test_string_conditions_and_an_unknown_operator() -> None:
    def holds(conditions: dict[str, Any], context: dict[str, Any]) -> bool:
        return iam_policy.conditions_hold(conditions, context)

    assert holds({"StringLike": {"aws:RequestTag/TenantId": "?*"}}, {"aws:RequestTag/TenantId": "acme"})
    assert not holds({"StringLike": {"aws:RequestTag/TenantId": "?*"}}, {"aws:RequestTag/TenantId": ""})
    assert not holds({"StringEquals": {"aws:TagKeys": "TenantId"}}, {})
    assert holds({"ForAllValues:StringEquals": {"aws:TagKeys": ["TenantId"]}}, {"aws:TagKeys": ["TenantId"]})
    assert not holds({"ForAllValues:StringEquals": {"aws:TagKeys": ["TenantId"]}}, {"aws:TagKeys": ["Other"]})
    with pytest.raises(iam_policy.PolicyError):
        holds({"NumericLessThan": {"aws:MultiFactorAuthAge": "300"}}, {})


def test_calls_with_an_assumed_roles_session_are_that_roles(tmp_path: Path) -> None:
    # Given a function that assumes TenantDataRole tagged with its tenant (the test stack's name)
    with aws_calls.recording(tmp_path, {"EventsTable", "EventsFunction"}), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="test-EventsTable",
            AttributeDefinitions=[
                {"AttributeName": "tenant_id", "AttributeType": "S"},
                {"AttributeName": "position", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "tenant_id", "KeyType": "HASH"},
                {"AttributeName": "position", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        with aws_calls.acting_as("EventsFunction"):
            credentials = boto3.client("sts", region_name="us-east-1").assume_role(
                RoleArn="arn:aws:iam::123456789012:role/test-tenant-data",
                RoleSessionName="acme",
                Tags=[{"Key": "TenantId", "Value": "acme"}],
            )["Credentials"]
            scoped = boto3.client(
                "dynamodb",
                region_name="us-east-1",
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
            scoped.get_item(
                TableName="test-EventsTable", Key={"tenant_id": {"S": "acme"}, "position": {"N": "1"}}
            )
    # Then the AssumeRole is the function's (on the template's role ARN), the read the role's
    calls = {
        (c.function, c.action, c.resource, c.role, c.tenant, str(c.leading_keys))
        for c in aws_calls.read_calls(tmp_path)
    }
    role_arn = f"arn:aws:iam::123456789012:role/{iam_policy.STACK_NAME}-tenant-data"
    assert calls == {
        ("EventsFunction", "sts:AssumeRole", role_arn, "", "", "None"),
        ("EventsFunction", "sts:TagSession", role_arn, "", "", "None"),
        ("EventsFunction", "dynamodb:GetItem", ARN + "EventsTable", "TenantDataRole", "acme", "['acme']"),
    }
