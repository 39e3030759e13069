"""What an operator relies on after the first deploy, read from the translated template: parameter
changes reach the stage, alarms cover what hurts, the chat timeout is one value, tracing is
sampled, the optional WAF, the tasks' dead-letter queue, and no ARN that assumes the aws partition.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from samtranslator.model import apigateway

from local import template
from tooling.sam_translate import translate, translated_template


def _resources(tpl: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {logical_id: r for logical_id, r in tpl["Resources"].items() if r["Type"] == resource_type}


def _parameters_in(value: Any, tpl: dict[str, Any]) -> set[str]:
    """Template parameters ``value`` depends on: Ref, ${Name} in Sub, and conditions of !If."""
    parameters = set(tpl["Parameters"])
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and item in parameters:
                found.add(item)
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                found |= set(re.findall(r"\$\{(\w+)\}", text)) & parameters
                found |= _parameters_in(item, tpl)
            elif key == "Fn::If":
                found |= _parameters_in(tpl["Conditions"][item[0]], tpl) | _parameters_in(item[1:], tpl)
            elif key == "Condition" and isinstance(item, str) and item in tpl.get("Conditions", {}):
                found |= _parameters_in(tpl["Conditions"][item], tpl)
            else:
                found |= _parameters_in(item, tpl)
    elif isinstance(value, list):
        for item in value:
            found |= _parameters_in(item, tpl)
    return found


def _api_shaping_parameters() -> set[str]:
    """The parameters a deployment of the API snapshots: those its OpenAPI body depends on."""
    tpl = translated_template()
    (api,) = _resources(tpl, "AWS::ApiGateway::RestApi").values()
    return _parameters_in(api["Properties"]["Body"], tpl)


def _changed_value(name: str) -> str:
    spec = template.template()["Parameters"][name]
    allowed = [str(value) for value in spec.get("AllowedValues", [])]
    default = str(spec.get("Default", ""))
    if allowed:
        return next(value for value in allowed if value != default)
    return "https://app.example.com" if name == "CorsAllowOrigin" else default + "-changed"


def _stage_deployment(tpl: dict[str, Any]) -> str:
    (stage,) = _resources(tpl, "AWS::ApiGateway::Stage").values()
    return str(stage["Properties"]["DeploymentId"]["Ref"])


# ---------------------------------------------------------------------- parameter changes redeploy


def test_the_api_shaping_parameters_are_the_ones_the_body_depends_on() -> None:
    # The parameters that change what a deployment of the API snapshots (preflight and gateway
    # responses, the chat integrations' tenant header and timeout)
    assert _api_shaping_parameters() >= {"CorsAllowOrigin", "ChatTenantIsolation", "ChatTimeoutSeconds"}


@pytest.mark.parametrize("parameter", sorted(_api_shaping_parameters()))
def test_changing_an_api_shaping_parameter_deploys_the_stage_again(
    parameter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tpl = template.template()
    # Given a deploy with the defaults, and a later one with the parameter changed
    monkeypatch.setattr(apigateway.time, "time", lambda: 1_800_000_000.0)
    before = translate(tpl, {})
    monkeypatch.setattr(apigateway.time, "time", lambda: 1_800_000_600.0)
    after = translate(tpl, {parameter: _changed_value(parameter)})
    # Then the stage points at a new deployment, which snapshots the changed API
    assert _stage_deployment(before) != _stage_deployment(after), (
        f"changing {parameter} leaves stage v1 on its old deployment"
    )
    assert _stage_deployment(after) in after["Resources"]
    assert _stage_deployment(before) not in after["Resources"]


# ---------------------------------------------------------------------- alarms


def _alarms() -> dict[str, dict[str, Any]]:
    return _resources(translated_template(), "AWS::CloudWatch::Alarm")


def _watched(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric, dimensions) of every metric the alarm reads."""
    props = alarm["Properties"]
    if "MetricName" in props:
        dims = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
        return [(props["Namespace"], props["MetricName"], dims)]
    watched = []
    for query in props["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            watched.append((metric["Namespace"], metric["MetricName"], dims))
    return watched


def test_every_alarm_notifies_the_alarm_topic_when_one_is_set() -> None:
    wired = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert len(_alarms()) >= 10
    for logical_id, alarm in _alarms().items():
        assert alarm["Properties"]["AlarmActions"] == wired, logical_id
        assert alarm["Properties"]["OKActions"] == wired, logical_id
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", logical_id
        # And each has a description an operator can act on (docs/operations.md, Alarms)
        assert len(alarm["Properties"]["AlarmDescription"]) > 40, logical_id


def test_every_function_has_a_throttles_alarm_and_every_api_function_an_errors_alarm() -> None:
    watched = [metric for alarm in _alarms().values() for metric in _watched(alarm)]
    functions = set(_resources(translated_template(), "AWS::Lambda::Function"))
    for function in functions:
        assert ("AWS/Lambda", "Throttles", {"FunctionName": {"Ref": function}}) in watched, function
        errors = ("AWS/Lambda", "Errors", {"FunctionName": {"Ref": function}})
        # The authorizer's Errors count every refused key (401 is an exception by API Gateway's
        # contract): its failures are counted from the access log instead
        assert (errors in watched) is (function != "AuthorizerFunction"), function


def test_the_api_5xx_rate_and_authorizer_failures_are_alarmed() -> None:
    tpl = translated_template()
    rate = _alarms()["Api5xxRateAlarm"]["Properties"]
    metrics = {name for _, name, _ in _watched(_alarms()["Api5xxRateAlarm"])}
    assert metrics == {"5XXError", "Count"}
    (stage,) = _resources(tpl, "AWS::ApiGateway::Stage").values()
    (api,) = _resources(tpl, "AWS::ApiGateway::RestApi").values()
    for _, _, dims in _watched(_alarms()["Api5xxRateAlarm"]):
        assert dims == {"ApiName": api["Properties"]["Name"], "Stage": stage["Properties"]["StageName"]}
    assert rate["Threshold"] == 5
    # The authorizer's failures: a metric filter on the access log's errorType
    metric_filter = tpl["Resources"]["AuthorizerFailuresMetricFilter"]["Properties"]
    assert metric_filter["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}
    log_format = json.loads(stage["Properties"]["AccessLogSetting"]["Format"])
    for field, value in re.findall(r"\$\.(\w+) = \"(\w+)\"", metric_filter["FilterPattern"]):
        assert log_format[field] == "$context.error.responseType", field
        assert value.startswith("AUTHORIZER_")
    transformation = metric_filter["MetricTransformations"][0]
    ((namespace, metric, _),) = _watched(_alarms()["AuthorizerFailuresAlarm"])
    assert (namespace, metric) == (transformation["MetricNamespace"], transformation["MetricName"])


def test_dynamodb_throttles_are_alarmed_on_every_table() -> None:
    tables = set(_resources(translated_template(), "AWS::DynamoDB::Table"))
    for kind in ("Read", "Write"):
        watched = _watched(_alarms()[f"DynamoDb{kind}ThrottlesAlarm"])
        assert {
            dims["TableName"]["Ref"] for _, name, dims in watched if name == f"{kind}ThrottleEvents"
        } == tables
        # CloudWatch refuses a metric-math alarm over more than 10 metrics
        assert len(watched) <= 10


def test_both_failure_queues_are_alarmed() -> None:
    watched = [metric for alarm in _alarms().values() for metric in _watched(alarm)]
    for queue in ("MeteringFailureQueue", "TaskDeadLetterQueue"):
        assert (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}},
        ) in watched, queue


# ---------------------------------------------------------------------- the tasks' dead-letter queue


def test_a_final_purge_that_fails_for_good_lands_in_the_dead_letter_queue() -> None:
    resources = translated_template()["Resources"]
    queue_arn = {"Fn::GetAtt": ["TaskDeadLetterQueue", "Arn"]}
    tenants = resources["TenantsFunction"]["Properties"]
    # Lambda's asynchronous attempts spent: the event goes to the queue
    assert tenants["DeadLetterConfig"] == {"TargetArn": queue_arn}
    # A schedule Scheduler could not deliver: the code names the queue, the scheduler role may send
    assert tenants["Environment"]["Variables"]["TASK_DEAD_LETTER_QUEUE_ARN"] == queue_arn
    statements = [
        statement
        for policy in resources["SchedulerRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    assert {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn} in statements
    # And the queue is encrypted and refuses plain HTTP, like the metering one
    assert resources["TaskDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    assert (
        resources["TaskDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Effect"]
        == "Deny"
    )


# ---------------------------------------------------------------------- the chat timeout


@pytest.mark.parametrize("seconds", template.template()["Parameters"]["ChatTimeoutSeconds"]["AllowedValues"])
def test_one_parameter_sets_the_chat_timeout_everywhere(seconds: int) -> None:
    tpl = translated_template()
    mapping = tpl["Mappings"]["ChatTimeouts"][str(seconds)]
    chat = tpl["Resources"]["ChatFunction"]["Properties"]
    env = chat["Environment"]["Variables"]
    # The code's deadline for JSON answers is the parameter itself; the function may run as long
    # as POST /chat's stream (ChatStreamTimeoutSeconds, which the operator keeps at least as long)
    assert chat["Timeout"] == {"Ref": "ChatStreamTimeoutSeconds"}
    assert env["INTEGRATION_TIMEOUT_SECONDS"] == {"Ref": "ChatTimeoutSeconds"}
    # And API Gateway gives every buffered chat route the same time, in milliseconds; the streamed
    # one (POST /chat) the stream's
    (api,) = _resources(tpl, "AWS::ApiGateway::RestApi").values()
    chat_operations = [
        operation
        for item in api["Properties"]["Body"]["paths"].values()
        for operation in item.values()
        if "ChatFunction" in json.dumps(operation.get("x-amazon-apigateway-integration", {}))
    ]
    assert len(chat_operations) == len([r for r in template.api_routes() if r.function == "ChatFunction"])
    buffered = {"Fn::FindInMap": ["ChatTimeouts", {"Ref": "ChatTimeoutSeconds"}, "IntegrationMillis"]}
    streamed = {"Fn::FindInMap": ["StreamTimeouts", {"Ref": "ChatStreamTimeoutSeconds"}, "IntegrationMillis"]}
    for operation in chat_operations:
        integration = operation["x-amazon-apigateway-integration"]
        is_stream = integration.get("responseTransferMode") == "STREAM"
        assert integration["timeoutInMillis"] == (streamed if is_stream else buffered)
    assert (
        sum(
            op["x-amazon-apigateway-integration"].get("responseTransferMode") == "STREAM"
            for op in chat_operations
        )
        == 1
    )
    assert mapping["IntegrationMillis"] == seconds * 1000
    # And one model attempt leaves the turn time to read the session and store the answer
    assert env["LLM_TIMEOUT_SECONDS"] == {
        "Fn::FindInMap": ["ChatTimeouts", {"Ref": "ChatTimeoutSeconds"}, "ModelAttemptSeconds"]
    }
    assert 0 < int(mapping["ModelAttemptSeconds"]) <= seconds - 9
    # Within what API Gateway allows a REST integration (300 s with a raised quota)
    assert 29 <= seconds <= 300


# ---------------------------------------------------------------------- tracing and the edge


def test_the_stage_is_traced_by_a_sampling_rule_with_no_reservoir() -> None:
    tpl = translated_template()
    rule = tpl["Resources"]["ApiSamplingRule"]
    spec = rule["Properties"]["SamplingRule"]
    assert rule["Condition"] == "TracingActive"
    assert spec["FixedRate"] == {"Ref": "TracingSampleRate"}
    assert spec["ReservoirSize"] == 0
    (api,) = _resources(tpl, "AWS::ApiGateway::RestApi").values()
    # API Gateway samples as the service "<api name>/<stage>"
    assert spec["ServiceName"] == {"Fn::Sub": "${AWS::StackName}-api/v1"}
    assert api["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-api"}
    assert 0 < tpl["Parameters"]["TracingSampleRate"]["Default"] <= 0.05
    # And its name fits X-Ray's 32 characters whatever the stack's (up to 52): the stack id's first
    # 8 hex digits, not the stack name
    from local.gateway.intrinsics import LocalNames, Resolver

    long_stack = "s" * 52
    stack_id = f"arn:aws:cloudformation:us-east-1:1:stack/{long_stack}/1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"
    resolver = Resolver(tpl, LocalNames(stack_name=long_stack))
    name = spec["RuleName"]
    assert "AWS::StackName" not in json.dumps(name)
    resolved = resolver.resolve(
        json.loads(json.dumps(name).replace('{"Ref": "AWS::StackId"}', json.dumps(stack_id)))
    )
    assert resolved == "api-1a2b3c4d" and len(resolved) <= 32


def test_the_waf_web_acl_is_optional_and_rate_limits_by_address() -> None:
    tpl = translated_template()
    assert tpl["Parameters"]["WafRateLimitPer5Minutes"]["Default"] == 0
    assert tpl["Conditions"]["WafEnabled"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WafRateLimitPer5Minutes"}, 0]}]
    }
    acl = tpl["Resources"]["WebAcl"]
    association = tpl["Resources"]["WebAclAssociation"]
    assert acl["Condition"] == association["Condition"] == "WafEnabled"
    (rule,) = acl["Properties"]["Rules"]
    assert rule["Action"] == {"Block": {}}
    assert rule["Statement"]["RateBasedStatement"] == {
        "Limit": {"Ref": "WafRateLimitPer5Minutes"},
        "AggregateKeyType": "IP",
    }
    assert association["Properties"]["ResourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${TenantryApi}/stages/v1"
    }


# ---------------------------------------------------------------------- partitions


def test_no_arn_assumes_the_aws_partition() -> None:
    # Given the stack translated for a region of another partition
    translated = json.dumps(translate(template.template(), {}, region="cn-north-1"))
    # Then every ARN takes its partition from the region: none is written for the aws partition
    assert "arn:aws-cn:" in translated
    assert "arn:aws:" not in translated, re.findall(r".{60}arn:aws:.{60}", translated)[:5]


@pytest.mark.parametrize("seconds", [29, 120])
def test_the_local_gateway_takes_the_chat_timeout_from_the_template(seconds: int) -> None:
    from local.gateway.api import load_api
    from local.gateway.intrinsics import LocalNames

    # Given the local stack started with ChatTimeoutSeconds (make dev PARAMS=ChatTimeoutSeconds=…)
    api = load_api(names=LocalNames(parameters={"ChatTimeoutSeconds": str(seconds)}))
    mapping = template.template()["Mappings"]["ChatTimeouts"][str(seconds)]
    # Then the buffered chat routes time out when API Gateway would, the streamed routes at their
    # streams' parameters, the others at its default
    parameters = template.template()["Parameters"]
    stream_seconds = {
        "ChatFunction": float(parameters["ChatStreamTimeoutSeconds"]["Default"]),
        "EventsFunction": float(parameters["EventStreamSeconds"]["Default"]),
    }
    routes = [route for route in api.routes if route.preflight is None]
    assert any(route.function == "ChatFunction" and not route.streamed for route in routes)
    for route in routes:
        if route.streamed:
            expected: float | None = stream_seconds[route.function]
        else:
            expected = float(seconds) if route.function == "ChatFunction" else None
        assert route.integration_timeout == expected, (route.method, route.path)
    # And the chat function runs as long as its stream may, and its code's deadline for JSON
    # answers and its model attempts fit the parameter, as on AWS
    function = api.functions["ChatFunction"]
    assert function.timeout_s == stream_seconds["ChatFunction"]
    assert function.env["INTEGRATION_TIMEOUT_SECONDS"] == str(seconds)
    assert function.env["LLM_TIMEOUT_SECONDS"] == mapping["ModelAttemptSeconds"]
