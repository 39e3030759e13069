"""template.yaml's GatewayResponses, and the local gateway rendering them as API Gateway does."""

from __future__ import annotations

import json
import math

import pytest

from local import template
from local.gateway import responses
from local.gateway.api import load_api
from local.gateway.responses import GatewayAnswer
from tenantry.tiers import TIERS

REQUIRED = {
    "UNAUTHORIZED": "unauthorized",
    "ACCESS_DENIED": "access_denied",
    "MISSING_AUTHENTICATION_TOKEN": "missing_authentication_token",
    "THROTTLED": "throttled",
    "QUOTA_EXCEEDED": "quota_exceeded",
    "REQUEST_TOO_LARGE": "request_too_large",
    "INTEGRATION_TIMEOUT": "integration_timeout",
    "AUTHORIZER_FAILURE": "authorizer_failure",
    "DEFAULT_4XX": "client_error",
    "DEFAULT_5XX": "server_error",
}


def test_the_template_shapes_every_gateway_answer_and_keeps_its_status() -> None:
    api = next(iter(template.resources_of_type("AWS::Serverless::Api").values()))
    configured = api["Properties"]["GatewayResponses"]
    assert set(REQUIRED) <= set(configured)
    for response_type, entry in configured.items():
        # No StatusCode: API Gateway's own status stays (401, 403, 429, 504…)
        assert "StatusCode" not in entry, response_type
        text = entry["ResponseTemplates"]["application/json"]
        assert "$context.error.messageString" in text and "$context.requestId" in text


@pytest.mark.parametrize(("response_type", "code"), sorted(REQUIRED.items()))
def test_each_answer_renders_as_json_with_message_error_and_request_id(response_type: str, code: str) -> None:
    # Given the template's gateway responses, and a message that needs escaping
    specs = load_api().gateway_responses
    status = (
        500
        if response_type in ("DEFAULT_5XX", "AUTHORIZER_FAILURE")
        else 504
        if "TIMEOUT" in response_type
        else 400
    )
    answer = GatewayAnswer(status, 'He said "no" \\ twice', response_type, "X")
    # When the local gateway renders it (after an authorizer's answer, as API Gateway would)
    rendered_status, _, body = responses.render(specs, answer, "req-1", {"denial": "access_denied"})
    # Then it is valid JSON with API Gateway's text, the code and the request id
    assert rendered_status == status
    assert json.loads(body) == {"message": 'He said "no" \\ twice', "error": code, "request_id": "req-1"}


def test_unlisted_types_fall_back_to_the_defaults_by_status() -> None:
    specs = load_api().gateway_responses
    invalid_key = GatewayAnswer(403, "Forbidden", "INVALID_API_KEY", "ForbiddenException")
    config_error = GatewayAnswer(500, None, "AUTHORIZER_CONFIGURATION_ERROR", "X")
    assert json.loads(responses.render(specs, invalid_key, "r")[2])["error"] == "client_error"
    rendered = responses.render(specs, config_error, "r")
    assert rendered[0] == 500 and json.loads(rendered[2]) == {
        "message": None,
        "error": "server_error",
        "request_id": "r",
    }


def test_without_gateway_responses_api_gateways_built_in_bodies_stay() -> None:
    deny = GatewayAnswer(
        403, "User is not authorized to access this resource", "ACCESS_DENIED", "X", "Message"
    )
    assert json.loads(responses.render({}, deny, "r")[2]) == {
        "Message": "User is not authorized to access this resource"
    }


def test_a_status_override_and_static_headers_are_applied() -> None:
    specs = responses.parse(
        {
            "MISSING_AUTHENTICATION_TOKEN": {
                "StatusCode": 404,
                "ResponseParameters": {"Headers": {"X-Why": "'no route'"}},
                "ResponseTemplates": {"application/json": '{"m":"$context.error.message"}'},
            }
        }
    )
    answer = GatewayAnswer(403, "Missing Authentication Token", "MISSING_AUTHENTICATION_TOKEN", "X")
    assert responses.render(specs, answer, "r") == (
        404,
        [("X-Why", "no route")],
        b'{"m":"Missing Authentication Token"}',
    )


def test_a_template_the_local_gateway_cannot_render_is_refused_at_load() -> None:
    with pytest.raises(responses.GatewayResponseError, match=r"identity\.sourceIp"):
        responses.parse(
            {
                "DEFAULT_4XX": {
                    "ResponseTemplates": {"application/json": '{"ip":"$context.identity.sourceIp"}'}
                }
            }
        )
    with pytest.raises(responses.GatewayResponseError, match="static"):
        responses.parse(
            {"DEFAULT_4XX": {"ResponseParameters": {"Headers": {"X": "method.request.header.Y"}}}}
        )


def test_a_throttled_answer_says_when_the_slowest_tier_has_a_token_again() -> None:
    # Given the tier table's slowest refill (one token every 60/requests_per_minute seconds)
    slowest = max(60 / tier.requests_per_minute for tier in TIERS.values())
    specs = load_api().gateway_responses
    # When API Gateway throttles a request (the usage plan's token bucket is empty)
    status, headers, _ = responses.render(
        specs, GatewayAnswer(429, "Too Many Requests", "THROTTLED", "X"), "r"
    )
    # Then it carries Retry-After: that refill, in whole seconds, a bound for every tier
    assert status == 429
    assert dict(headers)["Retry-After"] == str(math.ceil(slowest))
    # And a spent monthly quota does not (no number of seconds is right until the month ends)
    _, quota_headers, _ = responses.render(
        specs, GatewayAnswer(429, "Limit Exceeded", "QUOTA_EXCEEDED", "X"), "r"
    )
    assert "Retry-After" not in dict(quota_headers)


def test_a_denial_carries_the_authorizers_code() -> None:
    # Given the authorizer's answer for a suspended tenant's key
    specs = load_api().gateway_responses
    denied = GatewayAnswer(
        403, "User is not authorized to access this resource with an explicit deny", "ACCESS_DENIED", "X"
    )
    # When its policy denies the route, then API Gateway's 403 says the tenant is suspended
    _, _, body = responses.render(specs, denied, "r", {"denial": "tenant_suspended", "tenant_id": "acme"})
    assert json.loads(body)["error"] == "tenant_suspended"
