"""template.yaml as the local gateway sees it: routes, the authorizer, functions and their env.

Everything here is read from the template (plus optional overlay files that add resources, which
tests and the benchmark use for extra functions) and resolved to local names. Nothing is defined
twice: a route exists locally because a function has an ``Api`` event for it or the API's
``DefinitionBody`` integrates it (:func:`local.template.api_routes`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import template
from local.gateway import responses
from local.gateway.intrinsics import LocalNames, Resolver, UnsupportedIntrinsicError

FUNCTION_TYPES = ("AWS::Serverless::Function",)
API_TYPES = ("AWS::Serverless::Api",)
DEFAULT_AUTHORIZER_TTL = 300
DEFAULT_ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","httpMethod":"$context.httpMethod",'
    '"resourcePath":"$context.resourcePath","status":"$context.status"}'
)

# The layer's exec wrapper that runs tenantry.streaming_runtime: a function with it can stream.
STREAMING_RUNTIME_WRAPPER = "/opt/bin/tenantry-streaming-runtime"
# API Gateway's integration timeout when the integration sets none.
DEFAULT_INTEGRATION_TIMEOUT_SECONDS = 29.0

# Env vars Lambda sets per function; they differ between functions by nature.
LAMBDA_RESERVED_PREFIXES = ("AWS_LAMBDA_", "_HANDLER", "LAMBDA_TASK_ROOT")

_log = logging.getLogger("tenantry.local.gateway")


class TemplateError(ValueError):
    """template.yaml describes something the local gateway cannot serve."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    module_file: Path
    handler_name: str
    memory_mb: int
    timeout_s: int
    env: dict[str, str]
    # Lambda's tenant isolation mode (TenancyConfig PER_TENANT): one set of sandboxes per tenant.
    tenant_isolation: bool = False
    # Asynchronous invocation (EventInvokeConfig): retries after a failed attempt, and the ARN of
    # the on-failure destination (an SQS queue) that gets the invocation record after the last.
    async_retries: int = 2
    on_failure_arn: str | None = None
    # Its DeadLetterQueue (SQS): the event of an asynchronous invocation whose attempts all failed.
    dead_letter_arn: str | None = None
    # Its AWS_LAMBDA_EXEC_WRAPPER is the layer's streaming runtime: handlers get a response stream.
    streaming_runtime: bool = False


@dataclass(frozen=True)
class AuthorizerSpec:
    name: str
    function: str  # logical id
    payload_type: str  # REQUEST | TOKEN
    identity_headers: tuple[str, ...]
    identity_query: tuple[str, ...]
    ttl_seconds: int


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    path: str  # the resource path, e.g. /tenants/{tenant_id}
    function: str  # logical id
    authorizer: str | None  # authorizer name, or None
    api_key_required: bool
    pattern: re.Pattern[str] | None  # None for a path without parameters
    params: tuple[str, ...]
    specificity: tuple[int, ...]
    # The CORS preflight API Gateway answers itself (SAM's Cors: a MOCK integration): its headers.
    preflight: tuple[tuple[str, str], ...] | None = None
    # The authorizer context key API Gateway passes to Lambda as X-Amz-Tenant-Id (the integration
    # request parameter integration.request.header.X-Amz-Tenant-Id = context.authorizer.<key>).
    tenant_id_from: str | None = None
    # The integration timeout (seconds) the template gives this method; None: API Gateway's 29 s.
    integration_timeout: float | None = None
    # responseTransferMode STREAM: the function's output goes to the client as it comes.
    streamed: bool = False

    def match(self, path: str) -> dict[str, str] | None:
        if self.pattern is None:
            return {} if path == self.path else None
        found = self.pattern.match(path)
        return None if found is None else dict(zip(self.params, found.groups(), strict=True))


@dataclass
class ApiModel:
    api_logical_id: str
    stage: str
    api_key_source: str  # HEADER | AUTHORIZER
    access_log_format: str
    binary_media_types: tuple[str, ...]
    functions: dict[str, FunctionSpec]
    authorizers: dict[str, AuthorizerSpec]
    routes: list[Route]
    env_conflicts: dict[str, dict[str, str]] = field(default_factory=dict)
    # The function a subscription filter on the access log's group invokes (metering), if any.
    access_log_subscriber: str | None = None
    gateway_responses: dict[str, responses.GatewayResponseSpec] = field(default_factory=dict)
    endpoint_type: str = "REGIONAL"  # EndpointConfiguration.Type: how long a stream may stay silent
    _static: dict[tuple[str, str], Route] = field(default_factory=dict, repr=False)
    _static_any: dict[str, Route] = field(default_factory=dict, repr=False)
    _dynamic: list[Route] = field(default_factory=list, repr=False)
    _known_paths: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        for route in self.routes:
            if route.pattern is None:
                if route.method == "ANY":
                    self._static_any[route.path] = route
                else:
                    self._static[(route.method, route.path)] = route
            else:
                self._dynamic.append(route)
        # API Gateway prefers literal segments over parameters, and parameters over greedy ones;
        # on one resource, a method of its own over ANY.
        self._dynamic.sort(key=lambda route: (route.specificity, route.method != "ANY"), reverse=True)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for ``method`` ``path`` and its path parameters; None when API Gateway would
        answer "Missing Authentication Token"."""
        route = self._static.get((method, path)) or self._static_any.get(path)
        if route is not None:
            return route, {}
        for candidate in self._dynamic:
            if candidate.method not in (method, "ANY"):
                continue
            params = candidate.match(path)
            if params is not None:
                return candidate, params
        return None


def _route_pattern(path: str) -> tuple[re.Pattern[str] | None, tuple[str, ...], tuple[int, ...]]:
    """A regex for a resource path with parameters (groups p0, p1… in order), the parameter names,
    and a specificity that sorts like API Gateway's choice: segment by segment, a literal beats a
    parameter, which beats a greedy ``{name+}``."""
    segments = [segment for segment in path.strip("/").split("/") if segment]
    scores = tuple(
        0 if segment.endswith("+}") else 1 if segment.startswith("{") else 2 for segment in segments
    )
    if all(score == 2 for score in scores):
        return None, (), scores
    parts: list[str] = []
    params: list[str] = []
    for segment, score in zip(segments, scores, strict=True):
        if score == 2:
            parts.append(re.escape(segment))
            continue
        group = f"p{len(params)}"
        params.append(segment.strip("{}+"))
        parts.append(f"(?P<{group}>.+)" if score == 0 else f"(?P<{group}>[^/]+)")
    return re.compile("^/" + "/".join(parts) + "$"), tuple(params), scores


def _load_all(overlays: list[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The template merged with overlays (resources added or replaced, or merged into when the
    overlay's resource has no Type); each resource's base dir."""
    tpl = template.load_template(template.TEMPLATE_PATH)
    base_dirs = {logical_id: template.REPO_ROOT for logical_id in tpl.get("Resources", {})}
    for overlay_path in overlays:
        overlay = template.load_template(overlay_path)
        for section in ("Mappings", "Parameters"):
            tpl.setdefault(section, {}).update(overlay.get(section, {}) or {})
        for logical_id, resource in (overlay.get("Resources") or {}).items():
            existing = tpl.setdefault("Resources", {}).get(logical_id)
            if "Type" not in resource and existing is not None:
                # No Type: merged into the template's resource (e.g. more DefinitionBody paths).
                tpl["Resources"][logical_id] = _merged(existing, resource)
                continue
            tpl["Resources"][logical_id] = resource
            base_dirs[logical_id] = overlay_path.resolve().parent
    return tpl, base_dirs


def check_parameters(assignments: list[str], overlays: list[Path] | None = None) -> dict[str, str]:
    """``NAME=VALUE`` pairs checked as CloudFormation checks a deploy's parameters: the name is
    the template's, the value fits its AllowedValues and AllowedPattern."""
    declared: dict[str, Any] = _load_all(list(overlays or []))[0].get("Parameters") or {}
    values: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep:
            raise TemplateError(f"{assignment!r}: expected NAME=VALUE")
        spec = declared.get(name)
        if spec is None:
            raise TemplateError(f"{name} is not a parameter of template.yaml ({', '.join(sorted(declared))})")
        allowed = [str(item) for item in spec.get("AllowedValues") or []]
        if allowed and value not in allowed:
            raise TemplateError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and re.fullmatch(str(pattern), value) is None:
            raise TemplateError(f"{name}={value!r} does not match {pattern}")
        values[name] = value
    return values


def _merged(base: dict[str, Any], specific: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in specific.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _dead_letter_queue(resolver: Resolver, logical_id: str, config: Any) -> str | None:
    """The ARN of SAM's ``DeadLetterQueue`` (SQS only locally), or None."""
    if not isinstance(config, dict):
        return None
    if str(config.get("Type", "")) != "SQS":
        raise TemplateError(f"{logical_id} DeadLetterQueue: only an SQS queue runs locally")
    try:
        return str(resolver.resolve(config["TargetArn"]))
    except (KeyError, UnsupportedIntrinsicError) as exc:
        raise TemplateError(f"{logical_id} DeadLetterQueue: {exc}") from exc


def _event_invoke_config(resolver: Resolver, logical_id: str, config: Any) -> dict[str, Any]:
    """FunctionSpec fields from SAM's ``EventInvokeConfig`` (Lambda's defaults without one)."""
    if not isinstance(config, dict):
        return {}
    fields: dict[str, Any] = {}
    if "MaximumRetryAttempts" in config:
        fields["async_retries"] = int(resolver.resolve(config["MaximumRetryAttempts"]))
    on_failure = ((config.get("DestinationConfig") or {}).get("OnFailure")) or {}
    if on_failure:
        if str(on_failure.get("Type", "")) != "SQS":
            raise TemplateError(f"{logical_id} EventInvokeConfig: only an SQS OnFailure runs locally")
        try:
            fields["on_failure_arn"] = str(resolver.resolve(on_failure["Destination"]))
        except (KeyError, UnsupportedIntrinsicError) as exc:
            raise TemplateError(f"{logical_id} EventInvokeConfig OnFailure: {exc}") from exc
    return fields


def load_api(
    overlays: list[Path] | None = None,
    *,
    names: LocalNames | None = None,
    authorizer_ttl: int | None = None,
) -> ApiModel:
    """Read the template (and overlays) into an :class:`ApiModel` with local names resolved."""
    names = names or LocalNames()
    tpl, base_dirs = _load_all(list(overlays or []))
    resolver = Resolver(tpl, names)
    resources: dict[str, Any] = tpl.get("Resources", {})
    globals_function = (tpl.get("Globals") or {}).get("Function", {}) or {}

    apis = {logical_id: res for logical_id, res in resources.items() if res.get("Type") in API_TYPES}
    if len(apis) > 1:
        _log.warning("several APIs in the template; serving every Api event on one local API")
    api_logical_id, api_resource = next(iter(apis.items())) if apis else ("ServerlessRestApi", {})
    api_props = api_resource.get("Properties", {}) or {}
    api_auth = api_props.get("Auth", {}) or {}
    access_log = (api_props.get("AccessLogSetting") or {}).get("Format")

    functions: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") not in FUNCTION_TYPES:
            continue
        props = _merged(globals_function, resource.get("Properties", {}) or {})
        handler = str(props.get("Handler", "app.lambda_handler"))
        module_path, _, handler_name = handler.rpartition(".")
        code_dir = (base_dirs[logical_id] / str(props.get("CodeUri", "."))).resolve()
        try:
            env = {
                name: resolver.env_value(value)
                for name, value in ((props.get("Environment") or {}).get("Variables") or {}).items()
            }
        except UnsupportedIntrinsicError as exc:
            raise TemplateError(f"{logical_id} environment: {exc}") from exc
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=resolver.function_name(logical_id),
            arn=resolver.function_arn(logical_id),
            code_dir=code_dir,
            module_file=code_dir / (module_path.replace(".", "/") + ".py"),
            handler_name=handler_name,
            memory_mb=int(props.get("MemorySize", 128)),
            timeout_s=int(resolver.resolve(props.get("Timeout", 3))),
            env=env,
            streaming_runtime=env.get("AWS_LAMBDA_EXEC_WRAPPER") == STREAMING_RUNTIME_WRAPPER,
            tenant_isolation=_tenant_isolated(resolver, logical_id, props.get("TenancyConfig")),
            dead_letter_arn=_dead_letter_queue(resolver, logical_id, props.get("DeadLetterQueue")),
            **_event_invoke_config(resolver, logical_id, props.get("EventInvokeConfig")),
        )

    authorizers: dict[str, AuthorizerSpec] = {}
    for auth_name, auth in (api_auth.get("Authorizers") or {}).items():
        function_arn = auth.get("FunctionArn", {})
        target = function_arn.get("Fn::GetAtt") if isinstance(function_arn, dict) else None
        if target is None:
            raise TemplateError(f"authorizer {auth_name}: FunctionArn must be !GetAtt <Function>.Arn")
        target_id = target.split(".", 1)[0] if isinstance(target, str) else str(target[0])
        if target_id not in functions:
            raise TemplateError(f"authorizer {auth_name}: function {target_id} is not in the template")
        identity = auth.get("Identity") or {}
        payload_type = str(auth.get("FunctionPayloadType", "TOKEN")).upper()
        if payload_type == "TOKEN":
            headers: tuple[str, ...] = (str(identity.get("Header", "Authorization")),)
        else:
            headers = tuple(str(header) for header in identity.get("Headers", []) or [])
        ttl = int(identity.get("ReauthorizeEvery", DEFAULT_AUTHORIZER_TTL))
        authorizers[auth_name] = AuthorizerSpec(
            name=auth_name,
            function=target_id,
            payload_type=payload_type,
            identity_headers=headers,
            identity_query=tuple(str(name) for name in identity.get("QueryStrings", []) or []),
            ttl_seconds=ttl if authorizer_ttl is None else authorizer_ttl,
        )

    default_authorizer = api_auth.get("DefaultAuthorizer")
    default_key_required = bool(api_auth.get("ApiKeyRequired", False))
    routes: list[Route] = []
    seen: dict[tuple[str, str], str] = {}
    try:
        declared = template.api_routes(tpl)
    except ValueError as exc:
        raise TemplateError(str(exc)) from exc
    for declared_route in declared:
        method, path, auth = declared_route.method, declared_route.path, declared_route.auth
        origin = declared_route.origin
        if declared_route.function not in functions:
            raise TemplateError(f"{origin}: function {declared_route.function} is not in the template")
        authorizer = auth.get("Authorizer", default_authorizer)
        if authorizer in ("NONE", "AWS_IAM"):
            authorizer = None
        if authorizer is not None and authorizer not in authorizers:
            raise TemplateError(f"{origin}: unknown authorizer {authorizer}")
        if (method, path) in seen:
            # SAM's MergeDefinitions would silently keep the event's integration over the body's.
            raise TemplateError(f"{method} {path} is routed twice ({seen[(method, path)]}, {origin})")
        seen[(method, path)] = origin
        if declared_route.streamed and not functions[declared_route.function].streaming_runtime:
            # On AWS the managed runtime would answer without the prelude API Gateway waits for (502).
            raise TemplateError(
                f"{origin} streams: {declared_route.function} needs AWS_LAMBDA_EXEC_WRAPPER:"
                f" {STREAMING_RUNTIME_WRAPPER} (a runtime that can stream)"
            )
        pattern, params, specificity = _route_pattern(path)
        routes.append(
            Route(
                method=method,
                path=path,
                function=declared_route.function,
                authorizer=authorizer,
                api_key_required=bool(auth.get("ApiKeyRequired", default_key_required)),
                pattern=pattern,
                params=params,
                specificity=specificity,
                tenant_id_from=_tenant_id_source(resolver, declared_route),
                integration_timeout=_integration_timeout(resolver, declared_route),
                streamed=declared_route.streamed,
            )
        )

    routes.extend(_preflights(resolver, api_props.get("Cors"), routes))
    return ApiModel(
        api_logical_id=api_logical_id,
        stage=str(api_props.get("StageName", "Prod")),
        api_key_source=str(api_props.get("ApiKeySourceType", "HEADER")).upper(),
        access_log_format=str(access_log).replace("\n", " ") if access_log else DEFAULT_ACCESS_LOG_FORMAT,
        binary_media_types=tuple(str(kind) for kind in api_props.get("BinaryMediaTypes", []) or []),
        functions=functions,
        authorizers=authorizers,
        routes=routes,
        env_conflicts=env_conflicts(functions),
        access_log_subscriber=_access_log_subscriber(resources, api_props, functions),
        gateway_responses=_gateway_responses(resolver, api_props),
        endpoint_type=_endpoint_type(resolver, api_props),
    )


def _integration_timeout(resolver: Resolver, route: template.ApiRoute) -> float | None:
    """The method's integration timeout in seconds, as the template sets it (a parameter's value
    through !Ref or !FindInMap included); None where it sets none."""
    if route.timeout_millis is None:
        return None
    try:
        return float(resolver.resolve(route.timeout_millis)) / 1000
    except (UnsupportedIntrinsicError, TypeError, ValueError) as exc:
        raise TemplateError(f"{route.origin}: integration timeout {route.timeout_millis}: {exc}") from exc


def _endpoint_type(resolver: Resolver, api_props: dict[str, Any]) -> str:
    configuration = api_props.get("EndpointConfiguration") or {}
    if isinstance(configuration, dict):
        try:
            return str(resolver.resolve(configuration.get("Type", "REGIONAL"))).upper()
        except UnsupportedIntrinsicError as exc:
            raise TemplateError(f"EndpointConfiguration: {exc}") from exc
    return str(configuration).upper()


def _logical_target(value: Any) -> str | None:
    """``X`` of ``!Ref X`` or ``!GetAtt X.Attr``; None for anything else."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((name, argument),) = value.items()
    if name == "Ref":
        return str(argument)
    if name == "Fn::GetAtt":
        return str(argument.split(".", 1)[0] if isinstance(argument, str) else argument[0])
    return None


def _access_log_subscriber(
    resources: dict[str, Any], api_props: dict[str, Any], functions: dict[str, FunctionSpec]
) -> str | None:
    """The function CloudWatch Logs hands the stage's access-log lines to: a subscription filter
    on the access log's group whose destination is a function of the template."""
    group = _logical_target((api_props.get("AccessLogSetting") or {}).get("DestinationArn"))
    for resource in resources.values():
        if resource.get("Type") != "AWS::Logs::SubscriptionFilter":
            continue
        props = resource.get("Properties") or {}
        target = _logical_target(props.get("DestinationArn"))
        if _logical_target(props.get("LogGroupName")) == group and target in functions:
            return target
    return None


def _gateway_responses(
    resolver: Resolver, api_props: dict[str, Any]
) -> dict[str, responses.GatewayResponseSpec]:
    try:
        # Header values may depend on parameters (CORS): resolved like CloudFormation would.
        return responses.parse(resolver.resolve(api_props.get("GatewayResponses")))
    except (responses.GatewayResponseError, UnsupportedIntrinsicError) as exc:
        raise TemplateError(f"GatewayResponses: {exc}") from exc


# SAM's Cors keys → the preflight's headers, in SAM's order.
_CORS_HEADERS = (
    ("AllowOrigin", "Access-Control-Allow-Origin"),
    ("AllowHeaders", "Access-Control-Allow-Headers"),
    ("AllowMethods", "Access-Control-Allow-Methods"),
    ("MaxAge", "Access-Control-Max-Age"),
)


def _preflights(resolver: Resolver, cors: Any, routes: list[Route]) -> list[Route]:
    """SAM's ``Cors``: an OPTIONS method on every resource that has none, answered by API Gateway
    (MOCK, no authorizer, no key) with static headers. A value that resolves to AWS::NoValue
    leaves its header out; AllowMethods left unset lists the resource's own methods, as SAM does."""
    if not cors:
        return []
    if isinstance(cors, str) or (isinstance(cors, dict) and len(cors) == 1 and "AllowOrigin" not in cors):
        cors = {"AllowOrigin": cors}  # SAM: a bare value (or intrinsic) is AllowOrigin
    if not isinstance(cors, dict) or set(cors) - {key for key, _ in _CORS_HEADERS} - {"AllowCredentials"}:
        raise TemplateError(f"Cors: {cors!r} is not what the local gateway (or SAM) reads")
    try:
        resolved = {key: resolver.resolve(value) for key, value in cors.items()}
    except UnsupportedIntrinsicError as exc:
        raise TemplateError(f"Cors: {exc}") from exc
    methods: dict[str, set[str]] = {}
    for route in routes:
        methods.setdefault(route.path, set()).add(route.method)
    preflights: list[Route] = []
    for path, on_path in methods.items():
        if "OPTIONS" in on_path:
            continue  # SAM leaves a path's own OPTIONS method alone
        headers: list[tuple[str, str]] = []
        for key, header in _CORS_HEADERS:
            if key == "AllowMethods" and "AllowMethods" not in cors:
                every = {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}
                allowed = every if "ANY" in on_path else on_path | {"OPTIONS"}
                headers.append((header, ",".join(sorted(allowed))))
            elif resolved.get(key) is not None:
                headers.append((header, _static(f"Cors.{key}", resolved[key])))
        if resolved.get("AllowCredentials") is True:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        pattern, params, specificity = _route_pattern(path)
        preflights.append(
            Route("OPTIONS", path, "", None, False, pattern, params, specificity, preflight=tuple(headers))
        )
    return preflights


def _static(where: str, value: Any) -> str:
    try:
        return responses.static_value(where, value)
    except responses.GatewayResponseError as exc:
        raise TemplateError(str(exc)) from exc


_TENANT_HEADER = "integration.request.header.x-amz-tenant-id"
_AUTHORIZER_CONTEXT = re.compile(r"^context\.authorizer\.([A-Za-z0-9_]+)$")


def _tenant_id_source(resolver: Resolver, route: template.ApiRoute) -> str | None:
    """The authorizer context key a route's integration maps to ``X-Amz-Tenant-Id``, if any.

    Only that mapping changes what a Lambda proxy integration does, and only from the authorizer's
    context here; anything else fails loudly rather than being served differently from AWS."""
    if route.request_parameters is None:
        return None
    try:
        parameters = resolver.resolve(route.request_parameters)
    except UnsupportedIntrinsicError as exc:
        raise TemplateError(f"{route.origin} requestParameters: {exc}") from exc
    source: str | None = None
    for name, value in (parameters or {}).items():
        found = _AUTHORIZER_CONTEXT.match(str(value))
        if str(name).lower() != _TENANT_HEADER or found is None:
            raise TemplateError(
                f"{route.origin}: the local gateway maps only X-Amz-Tenant-Id from context.authorizer.<key>,"
                f" not {name} = {value}"
            )
        source = found.group(1)
    return source


def _tenant_isolated(resolver: Resolver, logical_id: str, tenancy: Any) -> bool:
    if tenancy is None:
        return False
    try:
        resolved = resolver.resolve(tenancy)
    except UnsupportedIntrinsicError as exc:
        raise TemplateError(f"{logical_id} TenancyConfig: {exc}") from exc
    return isinstance(resolved, dict) and resolved.get("TenantIsolationMode") == "PER_TENANT"


def env_conflicts(functions: dict[str, FunctionSpec]) -> dict[str, dict[str, str]]:
    """Env vars that two functions set to different values: name → {function: value}."""
    values: dict[str, dict[str, str]] = {}
    for spec in functions.values():
        for name, value in spec.env.items():
            values.setdefault(name, {})[spec.logical_id] = value
    return {name: by_function for name, by_function in values.items() if len(set(by_function.values())) > 1}


def shared_env(model: ApiModel) -> dict[str, str]:
    """The env vars every function agrees on (the union minus the conflicts)."""
    shared: dict[str, str] = {}
    for spec in model.functions.values():
        for name, value in spec.env.items():
            if name not in model.env_conflicts:
                shared[name] = value
    return shared


def template_files(overlays: list[Path] | None = None) -> list[Path]:
    return [template.TEMPLATE_PATH, *(overlays or [])]
