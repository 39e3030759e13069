"""What CloudFormation will really create: template.yaml after the SAM transform.

A fresh account or region must take the first ``sam deploy`` (no stage without its logging role, no
second stage), and the production settings must default to safe values.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from local import template
from tooling.sam_translate import translated_template


def _resources(resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in translated_template()["Resources"].items()
        if resource["Type"] == resource_type
    }


def _defaults() -> dict[str, Any]:
    return {name: spec.get("Default") for name, spec in translated_template()["Parameters"].items()}


def _evaluate(value: Any, parameters: dict[str, Any]) -> Any:
    """Conditions, ``!If`` and parameter ``!Ref`` under the given parameter values."""
    tpl = translated_template()
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref" and argument in parameters:
            return parameters[argument]
        if name == "Ref" and argument == "AWS::NoValue":
            return None
        if name == "Condition":
            return _evaluate(tpl["Conditions"][argument], parameters)
        if name == "Fn::Equals":
            left, right = (_evaluate(item, parameters) for item in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not _evaluate(argument[0], parameters)
        if name == "Fn::Sub" and isinstance(argument, str):
            return re.sub(r"\$\{(\w+)\}", lambda match: str(parameters[match.group(1)]), argument)
        if name == "Fn::If":
            condition, then, otherwise = argument
            chosen = then if _evaluate({"Condition": condition}, parameters) else otherwise
            return _evaluate(chosen, parameters)
    return value


def _depends_on(logical_id: str) -> set[str]:
    """Every resource ``logical_id`` waits for: DependsOn and every Ref/GetAtt, transitively."""
    resources = translated_template()["Resources"]
    seen: set[str] = set()
    pending = [logical_id]

    def references(value: Any) -> set[str]:
        if isinstance(value, dict):
            found: set[str] = set()
            for key, item in value.items():
                if key == "Ref" and item in resources:
                    found.add(item)
                elif key == "Fn::GetAtt":
                    found.add(item[0] if isinstance(item, list) else item.split(".")[0])
                else:
                    found |= references(item)
            return found
        if isinstance(value, list):
            return set().union(*(references(item) for item in value)) if value else set()
        return set()

    while pending:
        resource = resources[pending.pop()]
        direct = resource.get("DependsOn", [])
        direct = {direct} if isinstance(direct, str) else set(direct)
        for target in (direct | references(resource)) - seen:
            seen.add(target)
            pending.append(target)
    return seen


def test_the_translated_template_has_exactly_one_stage_v1_with_its_access_log() -> None:
    # Given the template after the SAM transform
    stages = _resources("AWS::ApiGateway::Stage")
    # Then there is one stage only, v1: SAM's default "Stage" (no log, no plan) is not created
    assert [stage["Properties"]["StageName"] for stage in stages.values()] == ["v1"]
    (stage_id, stage) = next(iter(stages.items()))
    assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }
    # And every usage plan is for that stage
    for plan in _resources("AWS::ApiGateway::UsagePlan").values():
        assert plan["DependsOn"] == stage_id
        assert [entry["Stage"] for entry in plan["Properties"]["ApiStages"]] == ["v1"]


def test_the_stage_waits_for_the_accounts_cloudwatch_logs_role_created_by_default() -> None:
    # Given the account-wide API Gateway setting and its role
    (account_id, account) = next(iter(_resources("AWS::ApiGateway::Account").items()))
    role = translated_template()["Resources"]["ApiGatewayCloudWatchRole"]
    # Then it is created unless the operator says another stack owns it
    assert _defaults()["CreateApiGatewayAccountRole"] == "true"
    assert account["Condition"] == role["Condition"] == "CreateApiGatewayAccount"
    assert _evaluate({"Condition": "CreateApiGatewayAccount"}, _defaults()) is True
    assert (
        _evaluate({"Condition": "CreateApiGatewayAccount"}, {"CreateApiGatewayAccountRole": "false"}) is False
    )
    # And API Gateway may assume the role, which may push logs
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    statement = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert role["Properties"]["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}
    ]
    # And the stage is created only after it (through the conditional handle)
    stage_id = next(iter(_resources("AWS::ApiGateway::Stage")))
    assert account_id in _depends_on(stage_id)


def test_every_function_and_the_access_log_keep_logs_for_the_retention_parameter() -> None:
    # Given the retention parameter (30 days unless overridden)
    assert _defaults()["LogRetentionDays"] == 30
    resources = translated_template()["Resources"]
    log_groups = _resources("AWS::Logs::LogGroup")
    # Then every function logs into a group of this stack with that retention
    for logical_id, function in _resources("AWS::Lambda::Function").items():
        target = (function["Properties"].get("LoggingConfig") or {}).get("LogGroup")
        assert isinstance(target, dict) and target.get("Ref") in log_groups, (
            f"{logical_id} has no LoggingConfig.LogGroup of its own: add a log group with "
            "RetentionInDays: !Ref LogRetentionDays and LoggingConfig: {LogGroup: !Ref ...}"
        )
        assert resources[target["Ref"]]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # And so does the stage's access log
    assert log_groups["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # And no two functions share a group
    targets = [
        f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for f in _resources("AWS::Lambda::Function").values()
    ]
    assert len(targets) == len(set(targets))


def test_the_endpoint_is_regional_by_default() -> None:
    api = next(iter(_resources("AWS::ApiGateway::RestApi").values()))
    assert api["Properties"]["EndpointConfiguration"] == {"Types": [{"Ref": "EndpointType"}]}
    assert _defaults()["EndpointType"] == "REGIONAL"


def _admin_and_public_routes() -> dict[tuple[str, str], bool]:
    """(method, path) → True for a public route (no authorizer), False for an admin route."""
    # No usage plan covers these: no key is required (admin routes, health, readiness)
    return {
        (route.method, route.path): route.auth.get("Authorizer") == "NONE"
        for route in template.api_routes()
        if route.auth.get("ApiKeyRequired") is False
    }


def _method_settings() -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, resource path) → the stage's MethodSettings entry."""
    stage = next(iter(_resources("AWS::ApiGateway::Stage").values()))
    return {
        (entry["HttpMethod"], entry["ResourcePath"]): entry for entry in stage["Properties"]["MethodSettings"]
    }


def test_every_route_without_a_usage_plan_has_a_stage_throttle_of_its_own() -> None:
    # Given the stage's method settings under the default parameters
    settings = _method_settings()
    defaults = _defaults()
    # Then each route no usage plan throttles (admin, health, readiness) has a throttle for its
    # own method (CloudFormation documents "*" only with "/*", the stage's default)
    routes = _admin_and_public_routes()
    assert {path for (_, path), public in routes.items() if public} >= {"/health", "/ready", "/console"}
    for (method, path), public in routes.items():
        resource_path = path.replace("/", "~1")
        entry = settings.get((method, "/" + resource_path))
        prefix = "Public" if public else "Admin"
        hint = (
            f'{{ResourcePath: "/{resource_path}", HttpMethod: {method}, '
            f"ThrottlingRateLimit: !Ref {prefix}RoutesRateLimit, "
            f"ThrottlingBurstLimit: !Ref {prefix}RoutesBurstLimit}}"
        )
        assert entry is not None, (
            f"{method} {path} needs no key, so no usage plan throttles it: add to TenantryApi's "
            f"MethodSettings\n  - {hint}"
        )
        assert entry["ThrottlingRateLimit"] == {"Ref": f"{prefix}RoutesRateLimit"}, (method, path)
        assert entry["ThrottlingBurstLimit"] == {"Ref": f"{prefix}RoutesBurstLimit"}, (method, path)
    # And "*" stands only for the stage's default, as CloudFormation documents it
    assert {path for (method, path) in settings if method == "*"} == {"/*"}
    # And the defaults are finite and positive
    for name in (
        "PublicRoutesRateLimit",
        "PublicRoutesBurstLimit",
        "AdminRoutesRateLimit",
        "AdminRoutesBurstLimit",
        "TenantRoutesRateLimit",
        "TenantRoutesBurstLimit",
    ):
        assert defaults[name] > 0, name


def test_tenant_routes_have_a_default_stage_throttle_above_every_tier() -> None:
    # Given the stage's default throttle ("/*", "*"), which every method without its own takes
    default = _method_settings()[("*", "/*")]
    defaults = _defaults()
    assert default["ThrottlingRateLimit"] == {"Ref": "TenantRoutesRateLimit"}
    assert default["ThrottlingBurstLimit"] == {"Ref": "TenantRoutesBurstLimit"}
    # Then each tenant route has a ceiling for all callers together, keyed or not
    tenant_routes = [
        route for route in template.api_routes() if route.auth.get("ApiKeyRequired") is not False
    ]
    assert tenant_routes
    own = {(method, path) for (method, path) in _method_settings() if method != "*"}
    for route in tenant_routes:
        assert (route.method, "/" + route.path.replace("/", "~1")) not in own, route
    # And one tenant of the highest tier fits under it, rate and burst
    tiers = translated_template()["Mappings"]["Tiers"]
    assert defaults["TenantRoutesRateLimit"] >= max(tier["RateLimit"] for tier in tiers.values())
    assert defaults["TenantRoutesBurstLimit"] >= max(tier["BurstLimit"] for tier in tiers.values())


@pytest.mark.parametrize(("reserved", "expected"), [(0, None), (50, 50)])
def test_the_authorizer_reserves_concurrency_only_when_asked(reserved: int, expected: int | None) -> None:
    authorizer = translated_template()["Resources"]["AuthorizerFunction"]["Properties"]
    assert _defaults()["AuthorizerReservedConcurrency"] == 0
    value = _evaluate(authorizer["ReservedConcurrentExecutions"], {"AuthorizerReservedConcurrency": reserved})
    assert value == expected


def test_tracing_is_on_by_default_for_every_function_on_the_request_path_and_the_stage() -> None:
    defaults = _defaults()
    assert defaults["Tracing"] == "Active"
    for logical_id, function in _resources("AWS::Lambda::Function").items():
        # Metering runs per access-log batch, off the request path, and starts no trace of its own
        expected = "PassThrough" if logical_id == "MeteringFunction" else "Active"
        assert _evaluate(function["Properties"]["TracingConfig"]["Mode"], defaults) == expected, logical_id
    stage = next(iter(_resources("AWS::ApiGateway::Stage").values()))
    assert _evaluate(stage["Properties"]["TracingEnabled"], defaults) is True
    assert _evaluate(stage["Properties"]["TracingEnabled"], {"Tracing": "PassThrough"}) is False


@pytest.mark.parametrize("origin", ["", "https://app.example.com"])
def test_cors_preflight_and_gateway_responses_follow_the_origin_parameter(origin: str) -> None:
    # Given the API's OpenAPI body as CloudFormation receives it, with CorsAllowOrigin set or not
    api = next(iter(_resources("AWS::ApiGateway::RestApi").values()))
    body = api["Properties"]["Body"]
    parameters = {**_defaults(), "CorsAllowOrigin": origin}
    expected = f"'{origin}'" if origin else None
    # Then every resource has an OPTIONS method that API Gateway answers itself (MOCK), with no
    # authorizer and no key (a browser's preflight carries neither)
    assert body["paths"]
    for path, item in body["paths"].items():
        options = item["options"]
        assert options["x-amazon-apigateway-integration"]["type"] == "mock", path
        assert not options.get("security"), path
        mapped = options["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"]
        allow_origin = mapped["method.response.header.Access-Control-Allow-Origin"]
        assert _evaluate(allow_origin, parameters) == expected, path
    # And every gateway response (401, 403, 429, 5xx…) carries the origin too, or nothing
    for response_type, response in body["x-amazon-apigateway-gateway-responses"].items():
        header = response["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert _evaluate(header, parameters) == expected, response_type
