"""Reads template.yaml, the single source of truth, for everything local: tables, functions, env.

CloudFormation's short-form tags (``!Ref``, ``!Sub``…) are loaded as ``{"Ref": …}`` /
``{"Fn::Sub": …}`` so the rest of the tooling sees the long form only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
LOCAL_STACK_NAME = "tenantry-local"
# The pseudo parameters local tooling resolves the template with (moto's defaults).
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic tags."""


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - safe subclass
    return loaded


@cache
def template() -> dict[str, Any]:
    return load_template()


def resources_of_type(resource_type: str, tpl: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    tpl = tpl if tpl is not None else template()
    return {
        logical_id: resource
        for logical_id, resource in tpl.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


@dataclass(frozen=True)
class ApiRoute:
    """One method of the API as the template declares it: an ``Api`` event of a function, or a
    method of an ``AWS::Serverless::Api``'s ``DefinitionBody`` (merged with the events by SAM's
    ``MergeDefinitions``)."""

    function: str  # logical id of the function the method invokes
    method: str  # upper case, or ANY
    path: str
    auth: dict[str, Any]  # the event's Auth; {} for a DefinitionBody method (the API's defaults)
    # The integration's requestParameters as written (intrinsics unresolved); None for an event,
    # which cannot set any.
    request_parameters: Any
    origin: str  # where it is declared, for error messages
    # responseTransferMode STREAM (InvokeWithResponseStream); only a DefinitionBody method can say so.
    streamed: bool = False
    # The integration's timeout in milliseconds as written (TimeoutInMillis of an event,
    # timeoutInMillis of a body method; intrinsics unresolved); None: API Gateway's 29 s.
    timeout_millis: Any = None


# A Lambda proxy integration's uri, as SAM writes it: …/2015-03-31/functions/${Function.Arn}/invocations,
# or, for one that streams, …/2021-11-15/functions/${Function.Arn}/response-streaming-invocations.
_LAMBDA_INVOCATIONS = re.compile(r"/2015-03-31/functions/\$\{([A-Za-z0-9]+)\.Arn\}/invocations$")
_LAMBDA_STREAMING_INVOCATIONS = re.compile(
    r"/2021-11-15/functions/\$\{([A-Za-z0-9]+)\.Arn\}/response-streaming-invocations$"
)
_OPENAPI_METHODS = {"get", "put", "post", "delete", "options", "head", "patch"}
_ANY_METHOD = "x-amazon-apigateway-any-method"


def api_routes(tpl: dict[str, Any] | None = None) -> list[ApiRoute]:
    """Every API method of the template, from functions' ``Api`` events and APIs' definition bodies.

    Raises ``ValueError`` for a definition-body method this tooling cannot read the way API Gateway
    does (not a Lambda proxy integration, or its own ``security``)."""
    tpl = tpl if tpl is not None else template()
    routes: list[ApiRoute] = []
    for logical_id, resource in resources_of_type("AWS::Serverless::Function", tpl).items():
        for event_name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "Api":
                continue
            props = event.get("Properties") or {}
            routes.append(
                ApiRoute(
                    function=logical_id,
                    method=str(props.get("Method", "ANY")).upper(),
                    path="/" + str(props["Path"]).strip("/"),
                    auth=dict(props.get("Auth") or {}),
                    request_parameters=None,
                    origin=f"{logical_id}.Events.{event_name}",
                    timeout_millis=props.get("TimeoutInMillis"),
                )
            )
    for api_id, api in resources_of_type("AWS::Serverless::Api", tpl).items():
        paths = ((api.get("Properties") or {}).get("DefinitionBody") or {}).get("paths") or {}
        for path, operations in paths.items():
            for key, operation in operations.items():
                if key not in _OPENAPI_METHODS and key != _ANY_METHOD:
                    continue
                origin = f"{api_id}.DefinitionBody {key.upper()} {path}"
                routes.append(_body_route(path, key, operation or {}, origin))
    return routes


def _body_route(path: str, key: str, operation: dict[str, Any], origin: str) -> ApiRoute:
    if "security" in operation:
        raise ValueError(f"{origin}: give the API's Auth defaults, not a method's own security")
    integration = operation.get("x-amazon-apigateway-integration") or {}
    uri = integration.get("uri")
    text = uri.get("Fn::Sub") if isinstance(uri, dict) else None
    streamed = str(integration.get("responseTransferMode", "BUFFERED")).upper() == "STREAM"
    pattern = _LAMBDA_STREAMING_INVOCATIONS if streamed else _LAMBDA_INVOCATIONS
    found = pattern.search(text) if isinstance(text, str) else None
    if integration.get("type") != "aws_proxy" or found is None:
        expected = (
            "…/2021-11-15/functions/${Fn.Arn}/response-streaming-invocations (responseTransferMode STREAM)"
            if streamed
            else "…/2015-03-31/functions/${Fn.Arn}/invocations"
        )
        raise ValueError(f"{origin}: not a Lambda proxy integration ({expected})")
    return ApiRoute(
        function=found.group(1),
        method="ANY" if key == _ANY_METHOD else key.upper(),
        path="/" + path.strip("/"),
        auth={},
        request_parameters=integration.get("requestParameters"),
        origin=origin,
        streamed=streamed,
        timeout_millis=integration.get("timeoutInMillis"),
    )


def local_table_name(logical_id: str, stack_name: str = LOCAL_STACK_NAME) -> str:
    return f"{stack_name}-{logical_id}"


def local_queue_name(logical_id: str, stack_name: str = LOCAL_STACK_NAME) -> str:
    return f"{stack_name}-{logical_id}"


def create_queues(sqs_client: Any, stack_name: str = LOCAL_STACK_NAME) -> dict[str, str]:
    """Create every template ``AWS::SQS::Queue`` (idempotent); logical id → queue URL."""
    urls: dict[str, str] = {}
    for logical_id, resource in resources_of_type("AWS::SQS::Queue").items():
        props = resource.get("Properties") or {}
        attributes = {
            name: str(props[name])
            for name in ("MessageRetentionPeriod", "VisibilityTimeout")
            if isinstance(props.get(name), int | str)
        }
        created = sqs_client.create_queue(
            QueueName=local_queue_name(logical_id, stack_name), Attributes=attributes
        )
        urls[logical_id] = str(created["QueueUrl"])
    return urls


def table_definitions(stack_name: str = LOCAL_STACK_NAME) -> dict[str, dict[str, Any]]:
    """``create_table`` arguments for every ``AWS::DynamoDB::Table`` in the template, by logical id.

    The ``TimeToLiveSpecification``, if any, is returned under the extra key ``"TimeToLive"`` for
    ``update_time_to_live``.
    """
    definitions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources_of_type("AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        kwargs: dict[str, Any] = {
            "TableName": local_table_name(logical_id, stack_name),
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        for indexes in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if indexes in props:
                kwargs[indexes] = props[indexes]
        if "TimeToLiveSpecification" in props:
            kwargs["TimeToLive"] = props["TimeToLiveSpecification"]
        definitions[logical_id] = kwargs
    return definitions


def key_attributes(stack_name: str = LOCAL_STACK_NAME) -> dict[str, tuple[str, ...]]:
    """Each template table's key attributes (hash, then range), by its local name."""
    return {
        str(definition["TableName"]): tuple(
            str(part["AttributeName"])
            for kind in ("HASH", "RANGE")
            for part in definition["KeySchema"]
            if part["KeyType"] == kind
        )
        for definition in table_definitions(stack_name).values()
    }


def create_tables(dynamodb_client: Any, stack_name: str = LOCAL_STACK_NAME) -> dict[str, str]:
    """Create every template table that does not exist yet; return logical id → physical name."""
    existing = set(dynamodb_client.list_tables().get("TableNames", []))
    names: dict[str, str] = {}
    for logical_id, definition in table_definitions(stack_name).items():
        kwargs = dict(definition)
        ttl = kwargs.pop("TimeToLive", None)
        names[logical_id] = kwargs["TableName"]
        if kwargs["TableName"] in existing:
            continue
        dynamodb_client.create_table(**kwargs)
        if ttl and ttl.get("Enabled"):
            dynamodb_client.update_time_to_live(
                TableName=kwargs["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
    return names


def usage_plan_definitions(stack_name: str = LOCAL_STACK_NAME) -> dict[str, dict[str, Any]]:
    """Usage plans from the template, with ``!FindInMap`` and ``!Sub`` resolved, by logical id."""
    tpl = template()
    mappings = tpl.get("Mappings", {})

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Fn::FindInMap" in value:
            map_name, top, second = value["Fn::FindInMap"]
            return mappings[map_name][top][second]
        if isinstance(value, dict) and "Fn::Sub" in value:
            return str(value["Fn::Sub"]).replace("${AWS::StackName}", stack_name)
        return value

    plans: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources_of_type("AWS::ApiGateway::UsagePlan").items():
        props = resource["Properties"]
        plans[logical_id] = {
            "name": resolve(props["UsagePlanName"]),
            "description": props.get("Description", ""),
            "throttle": {
                "rateLimit": float(resolve(props["Throttle"]["RateLimit"])),
                "burstLimit": int(resolve(props["Throttle"]["BurstLimit"])),
            },
            "quota": {
                "limit": int(resolve(props["Quota"]["Limit"])),
                "period": props["Quota"]["Period"],
            },
        }
    return plans


def create_usage_plans(apigateway_client: Any, stack_name: str = LOCAL_STACK_NAME) -> dict[str, str]:
    """Create the template's usage plans that do not exist yet; return plan name → id."""
    existing = {
        plan["name"]: plan["id"] for plan in apigateway_client.get_usage_plans(limit=500).get("items", [])
    }
    ids: dict[str, str] = {}
    for definition in usage_plan_definitions(stack_name).values():
        name = definition["name"]
        if name not in existing:
            existing[name] = apigateway_client.create_usage_plan(**definition)["id"]
        ids[name] = existing[name]
    return ids


def table_env_vars() -> dict[str, str]:
    """Env var → table logical id, for every function env var that is ``!Ref`` of a table."""
    tables = set(resources_of_type("AWS::DynamoDB::Table"))
    found: dict[str, str] = {}
    functions = resources_of_type("AWS::Serverless::Function")
    for resource in functions.values():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for env_var, value in variables.items():
            if isinstance(value, dict) and value.get("Ref") in tables:
                found[env_var] = value["Ref"]
    return found
