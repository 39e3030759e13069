"""Chat's tenant isolation mode as CloudFormation will create it: template.yaml after the SAM transform.

Lambda refuses to invoke a tenant-isolated function without ``X-Amz-Tenant-Id``; API Gateway sends
it only as an integration request parameter. These tests resolve the translated template under each
value of ``ChatTenantIsolation`` (conditions and ``!If`` evaluated as CloudFormation would) and read
the REST API's body the way API Gateway imports it: method by method, integration by integration.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest

from local import template
from local.gateway.api import load_api
from local.gateway.intrinsics import LocalNames, Resolver
from tenantry import authorizer, keys
from tooling.sam_translate import translated_template

TENANT_HEADER = "integration.request.header.X-Amz-Tenant-Id"
FROM_AUTHORIZER = "context.authorizer.tenant_id"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
_FUNCTION = re.compile(r":function:tenantry-local-([A-Za-z0-9]+)/(?:response-streaming-)?invocations$")


def _deployed(isolation: str, cors_origin: str = "") -> dict[str, Any]:
    """The translated template's resources, resolved for a stack deployed with ``isolation``."""
    tpl = translated_template()
    parameters = {"ChatTenantIsolation": isolation, "CorsAllowOrigin": cors_origin}
    resolver = Resolver(tpl, LocalNames(parameters=parameters))
    resources: dict[str, Any] = {}
    for logical_id, resource in tpl["Resources"].items():
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        resources[logical_id] = {**resource, "Properties": resolver.resolve(resource.get("Properties", {}))}
    return resources


def _methods(resources: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(VERB, path) → the method's OpenAPI operation, from the one REST API's body; CORS preflights
    (MOCK integrations API Gateway answers itself, when CorsAllowOrigin is set) left out."""
    (api,) = (r for r in resources.values() if r["Type"] == "AWS::ApiGateway::RestApi")
    return {
        (method.upper(), path): operation
        for path, operations in api["Properties"]["Body"]["paths"].items()
        for method, operation in operations.items()
        if method in HTTP_METHODS and operation["x-amazon-apigateway-integration"]["type"] != "mock"
    }


def _function_of(operation: dict[str, Any]) -> str:
    integration = operation["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy"
    found = _FUNCTION.search(integration["uri"])
    assert found is not None, integration["uri"]
    return found.group(1)


def _isolated_functions(resources: dict[str, Any]) -> set[str]:
    return {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
        and (resource["Properties"].get("TenancyConfig") or {}).get("TenantIsolationMode") == "PER_TENANT"
    }


@pytest.mark.parametrize("cors_origin", ["", "https://app.example.com"])
def test_with_per_tenant_every_chat_method_passes_the_authorizers_tenant_id(cors_origin: str) -> None:
    # Given the stack deployed with ChatTenantIsolation=PER_TENANT (with and without CORS preflights)
    resources = _deployed("PER_TENANT", cors_origin)
    # Then the chat function is created in tenant isolation mode
    assert _isolated_functions(resources) == {"ChatFunction"}
    # And each of its four methods maps the authorizer's tenant id to X-Amz-Tenant-Id
    chat = {key: op for key, op in _methods(resources).items() if _function_of(op) == "ChatFunction"}
    assert set(chat) == {
        ("POST", "/chat"),
        ("GET", "/sessions"),
        ("GET", "/sessions/{session_id}"),
        ("DELETE", "/sessions/{session_id}"),
    }
    for key, operation in chat.items():
        parameters = operation["x-amazon-apigateway-integration"].get("requestParameters")
        assert parameters == {TENANT_HEADER: FROM_AUTHORIZER}, key
        # And SAM's Auth still applies to them: the authorizer and the tier's API key
        assert operation["security"] == [{"ApiKeyAuthorizer": []}, {"api_key": []}], key


def test_with_none_no_method_carries_a_request_parameter_and_chat_is_not_isolated() -> None:
    # Given the default (NONE)
    resources = _deployed("NONE")
    # Then no function is tenant-isolated and no integration maps anything
    assert _isolated_functions(resources) == set()
    for key, operation in _methods(resources).items():
        assert "requestParameters" not in operation["x-amazon-apigateway-integration"], key


@pytest.mark.parametrize("isolation", ["NONE", "PER_TENANT"])
def test_a_method_passes_a_tenant_id_exactly_when_its_function_is_isolated(isolation: str) -> None:
    # Lambda refuses an isolated function's invoke without the header; a non-isolated function
    # has no use for it. Both follow one condition, so they can never disagree.
    resources = _deployed(isolation)
    isolated = _isolated_functions(resources)
    for key, operation in _methods(resources).items():
        mapped = TENANT_HEADER in (
            operation["x-amazon-apigateway-integration"].get("requestParameters") or {}
        )
        assert mapped == (_function_of(operation) in isolated), key


def test_the_mapped_context_key_is_the_one_the_authorizer_returns() -> None:
    # Given the authorizer's answer for a valid tenant key
    item = {"tenant_id": "t-a", "role": "tenant", "status": "active", "tier": "basic", "key_id": "k1"}
    event = {
        "headers": {"X-API-Key": keys.generate("tenant")},
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api/v1/POST/chat",
    }
    answer = authorizer.authorize(event, lookup=lambda _hash: item)
    # Then FROM_AUTHORIZER names a key of its context holding the tenant id
    assert answer["context"][FROM_AUTHORIZER.rsplit(".", 1)[1]] == "t-a"


@pytest.mark.parametrize("isolation", ["NONE", "PER_TENANT"])
def test_every_template_route_is_a_method_api_gateway_may_invoke_its_function_for(isolation: str) -> None:
    # Given the deployed API (SAM merges the functions' Api events into the DefinitionBody)
    resources = _deployed(isolation)
    methods = _methods(resources)
    # Then no declared route was lost or replaced in the merge
    assert {(route.method, route.path): route.function for route in template.api_routes()} == {
        key: _function_of(operation) for key, operation in methods.items()
    }
    # And each method's function lets API Gateway invoke it for that method, and for no method of
    # another function
    permissions = [
        (r["Properties"]["FunctionName"], r["Properties"]["SourceArn"])
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    for (method, path), operation in methods.items():
        function = f"tenantry-local-{_function_of(operation)}"
        concrete = re.sub(r"{[^}]+}", "x", path)
        arn = f"arn:aws:execute-api:us-east-1:123456789012:localapi00/v1/{method}{concrete}"
        allowed = {name for name, source in permissions if fnmatch.fnmatchcase(arn, source)}
        assert function in allowed, (method, path)
        assert allowed <= {function, "tenantry-local-AuthorizerFunction"}, (method, path, allowed)


@pytest.mark.parametrize("isolation", ["NONE", "PER_TENANT"])
def test_the_template_accepts_both_values(isolation: str) -> None:
    # Given any template Rules, evaluated for the parameter value
    tpl = translated_template()
    resolver = Resolver(tpl, LocalNames(parameters={"ChatTenantIsolation": isolation}))
    for name, rule in (tpl.get("Rules") or {}).items():
        if "RuleCondition" in rule and not resolver.resolve(rule["RuleCondition"]):
            continue
        # Then no assertion refuses it
        for assertion in rule["Assertions"]:
            assert resolver.resolve(assertion["Assert"]), name


@pytest.mark.parametrize(("isolation", "source"), [("NONE", None), ("PER_TENANT", "tenant_id")])
def test_the_local_gateway_reads_the_same_mapping_from_the_template(
    isolation: str, source: str | None
) -> None:
    # Given the local gateway's model of the template under the parameter value
    model = load_api(names=LocalNames(parameters={"ChatTenantIsolation": isolation}))
    # Then chat is isolated exactly when its routes pass the authorizer's tenant_id
    assert model.functions["ChatFunction"].tenant_isolation == (source is not None)
    chat_routes = [route for route in model.routes if route.function == "ChatFunction"]
    assert len(chat_routes) == 4
    assert {route.tenant_id_from for route in chat_routes} == {source}
    assert {route.tenant_id_from for route in model.routes if route.function != "ChatFunction"} == {None}
