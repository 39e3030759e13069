"""One role table (tenantry.routes) behind the template, the authorizer, the handlers and the prices.

Each test fails when a route has no role, no price, or when the template's Auth, the authorizer's
policy or the handlers' check disagrees with the table."""

from __future__ import annotations

import re
from typing import Any

import pytest

from local import template
from local.gateway.auth import AuthorizerResult
from tenantry import authorizer, pricing, routes
from tests.conftest import admin_context, api_event, load_function, response_json, tenant_context

STAGE_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1"
FUNCTION_DIRS = {"TenantsFunction": "tenants", "EventsFunction": "events", "ChatFunction": "chat"}


def template_routes() -> dict[str, tuple[str, dict[str, Any]]]:
    """``METHOD /path`` → (function logical id, its Auth) for every API method of the template:
    the functions' Api events and the API's DefinitionBody (whose methods take the API's defaults)."""
    return {f"{route.method} {route.path}": (route.function, route.auth) for route in template.api_routes()}


def concrete(route: str) -> tuple[str, str]:
    method, _, path = route.partition(" ")
    return method, re.sub(r"\{[^}/]+\}", "x1", path)


def test_every_template_route_has_a_role_and_the_table_no_other() -> None:
    assert sorted(routes.ROLES) == sorted(template_routes())


@pytest.mark.parametrize("route", sorted(routes.ROLES))
def test_the_templates_auth_agrees_with_the_role(route: str) -> None:
    _, auth = template_routes()[route]
    role = routes.ROLES[route]
    public = auth.get("Authorizer") == "NONE"
    # A public route has no authorizer; an admin route has the authorizer and no usage-plan key
    # (operators are not metered by a plan); a tenant route has both (the template's defaults).
    assert public == (role == "public"), auth
    if not public:
        assert auth.get("ApiKeyRequired", True) == (role == "tenant"), auth


@pytest.mark.parametrize("route", sorted(routes.ROLES))
def test_every_route_has_a_price(route: str) -> None:
    (reads, writes), listed = pricing.route_units(route)
    assert listed, f"{route} is missing from pricing.ROUTE_REQUEST_UNITS"
    assert reads >= 0 and writes >= 0


def test_the_price_table_lists_no_route_the_api_does_not_have() -> None:
    assert set(pricing.ROUTE_REQUEST_UNITS) <= set(routes.ROLES)


def test_an_unlisted_route_is_priced_as_the_dearest_never_as_free() -> None:
    (reads, writes), listed = pricing.route_units("GET /not-a-route")
    assert not listed and reads + writes >= max(r + w for r, w in pricing.ROUTE_REQUEST_UNITS.values())


@pytest.mark.parametrize("route", sorted(r for r, role in routes.ROLES.items() if role != "public"))
@pytest.mark.parametrize("role", ["admin", "tenant"])
def test_the_authorizers_policy_allows_exactly_the_tables_role(route: str, role: str) -> None:
    # Given the policy the authorizer returns for a key of ``role`` (evaluated as API Gateway does)
    policy = AuthorizerResult("p", authorizer.policy_for(role, STAGE_ARN, False), {}, None)
    method, path = concrete(route)
    # When the route is called, then it is allowed exactly when the table gives it to that role
    decision = policy.decide(f"{STAGE_ARN}/{method}{path}")
    assert (decision == "allow") == (routes.ROLES[route] == role), decision


@pytest.mark.parametrize(
    "route", sorted(r for r, (fn, _) in template_routes().items() if fn in FUNCTION_DIRS)
)
def test_a_handler_refuses_the_other_role_before_it_runs(route: str, lambda_context: Any) -> None:
    # Given the route's function and a caller of the role the table does not give it
    function_dir = FUNCTION_DIRS[template_routes()[route][0]]
    handler = load_function(function_dir).lambda_handler
    role = routes.ROLES[route]
    wrong = tenant_context("acme") if role == "admin" else admin_context()
    method, path = concrete(route)
    # When it calls (no AWS at all: the check runs before any handler code)
    response = handler(
        api_event(method, path, authorizer=wrong, resource=route.partition(" ")[2]), lambda_context
    )
    # Then 403, naming the role the route needs
    assert response["statusCode"] == 403
    assert response_json(response)["error"] == ("admin_only" if role == "admin" else "tenant_only")


def test_a_route_the_table_does_not_know_is_404(lambda_context: Any) -> None:
    handler = load_function("tenants").lambda_handler
    event = api_event(
        "GET", "/tenants/acme/secrets", authorizer=admin_context(), resource="/tenants/{tenant_id}/secrets"
    )
    response = handler(event, lambda_context)
    assert response["statusCode"] == 404


def test_the_streamed_routes_are_the_templates_stream_integrations_and_their_functions_can_stream() -> None:
    # The one table of streamed routes (tenantry.routes.STREAMED, where the glue answers through the
    # response stream) is exactly the template's responseTransferMode: STREAM methods
    streamed = {f"{route.method} {route.path}" for route in template.api_routes() if route.streamed}
    assert streamed == set(routes.STREAMED)
    # And every function behind one runs the layer's streaming runtime (the managed runtime would
    # answer without the prelude API Gateway waits for)
    functions = template.resources_of_type("AWS::Serverless::Function")
    for route in template.api_routes():
        if route.streamed:
            variables = functions[route.function]["Properties"]["Environment"]["Variables"]
            assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bin/tenantry-streaming-runtime"


# ------------------------------------------------------------------ scopes (issue 25)
KEY_SCOPES: list[frozenset[str] | None] = [None, *(frozenset({scope}) for scope in routes.SCOPE_NAMES)]


def test_every_tenant_route_has_a_scope_entry_and_the_scope_table_no_other_route() -> None:
    # A new tenant route must say which scope it needs (None: any tenant key), or this fails
    assert sorted(routes.SCOPES) == sorted(routes.routes_for("tenant"))
    assert {scope for scope in routes.SCOPES.values() if scope} <= set(routes.SCOPE_NAMES)


def _scope_id(scopes: frozenset[str] | None) -> str:
    return "all" if scopes is None else "+".join(sorted(scopes))


@pytest.mark.parametrize("scopes", KEY_SCOPES, ids=_scope_id)
@pytest.mark.parametrize("route", sorted(r for r, role in routes.ROLES.items() if role != "public"))
def test_a_keys_cached_policy_allows_exactly_the_routes_of_its_scopes(
    route: str, scopes: frozenset[str] | None
) -> None:
    # Given the one policy API Gateway caches for a tenant key with ``scopes`` (and reuses for
    # every method it calls)
    policy = AuthorizerResult("p", authorizer.policy_for("tenant", STAGE_ARN, False, scopes), {}, None)
    method, path = concrete(route)
    # When the route is called, then it is allowed exactly when it is a tenant route the scopes
    # cover (a route that needs no scope, or all scopes); anything else is API Gateway's 403
    decision = policy.decide(f"{STAGE_ARN}/{method}{path}")
    needed = routes.SCOPES.get(route)
    expected = routes.ROLES[route] == "tenant" and (needed is None or scopes is None or needed in scopes)
    assert (decision == "allow") == expected, decision


@pytest.mark.parametrize("route", sorted(r for r, scope in routes.SCOPES.items() if scope is not None))
def test_a_handler_refuses_a_key_without_the_routes_scope_before_it_runs(
    route: str, lambda_context: Any
) -> None:
    # Given a tenant key holding every scope but the one the route needs
    needed = routes.SCOPES[route]
    others = " ".join(scope for scope in routes.SCOPE_NAMES if scope != needed)
    handler = load_function(FUNCTION_DIRS[template_routes()[route][0]]).lambda_handler
    method, path = concrete(route)
    # When it calls the route past the gateway (a policy cached from an older table)
    context = {**tenant_context("acme"), "scopes": others}
    response = handler(
        api_event(method, path, authorizer=context, resource=route.partition(" ")[2]), lambda_context
    )
    # Then the handler answers 403 scope_missing, naming the scope, before any AWS call
    assert response["statusCode"] == 403
    body = response_json(response)
    assert body["error"] == "scope_missing" and str(needed) in body["message"]
