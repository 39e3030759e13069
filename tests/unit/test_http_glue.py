"""The HTTP glue every function shares: media types, body limits, error shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import admin_context, api_event, load_function, response_json


def test_a_form_encoded_body_is_415_naming_the_header(aws: dict[str, str], lambda_context: Any) -> None:
    # Given curl's default for -d: a form-encoded body
    event = api_event(
        "POST",
        "/tenants",
        raw_body='{"name":"Acme","tier":"basic"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        authorizer=admin_context(),
    )
    # When it reaches a handler
    response = load_function("tenants").lambda_handler(event, lambda_context)
    # Then a clear 415 that names the header, and nothing is created
    assert response["statusCode"] == 415
    body = response_json(response)
    assert body["error"] == "unsupported_media_type"
    assert body["field"] == "Content-Type"
    listing = load_function("tenants").lambda_handler(
        api_event("GET", "/tenants", authorizer=admin_context()), lambda_context
    )
    assert response_json(listing)["tenants"] == []


def test_json_with_or_without_a_charset_is_accepted(aws: dict[str, str], lambda_context: Any) -> None:
    for media_type in ("application/json", "application/json; charset=utf-8"):
        event = api_event(
            "POST",
            "/tenants",
            body={"name": "Acme", "tier": "basic"},
            headers={"Content-Type": media_type},
            authorizer=admin_context(),
        )
        assert load_function("tenants").lambda_handler(event, lambda_context)["statusCode"] == 201


def _cors(response: dict[str, Any]) -> dict[str, str]:
    headers = {**(response.get("headers") or {})}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ",".join(values)
    return {name: value for name, value in headers.items() if name.lower().startswith("access-control-")}


def test_answers_carry_the_allowed_origin_only(
    aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the tenants function deployed with CorsAllowOrigin set
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "https://app.example.com")
    tenants = load_function("tenants")

    def call(origin: str | None, **kwargs: Any) -> dict[str, Any]:
        headers = {"Origin": origin} if origin else {}
        event = api_event("GET", "/tenants", authorizer=admin_context(), **kwargs)
        event["headers"] = {**(event.get("headers") or {}), **headers}
        answer: dict[str, Any] = tenants.lambda_handler(event, lambda_context)
        return answer

    # When a page on that origin calls, its answer names the origin and what the page may read
    allowed = _cors(call("https://app.example.com"))
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Retry-After" in allowed["Access-Control-Expose-Headers"]
    # And another origin, or no Origin at all (not a browser), gets no CORS header
    assert _cors(call("https://evil.example.net")) == {}
    assert _cors(call(None)) == {}
    # And an answer refused before routing (415) carries it too
    refused = tenants.lambda_handler(
        api_event(
            "POST",
            "/tenants",
            raw_body="a=1",
            headers={"Content-Type": "text/plain", "Origin": "https://app.example.com"},
            authorizer=admin_context(),
        ),
        lambda_context,
    )
    assert refused["statusCode"] == 415
    assert _cors(refused)["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_no_cors_header_when_the_origin_parameter_is_empty(
    aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "")
    event = api_event(
        "GET", "/tenants", headers={"Origin": "https://app.example.com"}, authorizer=admin_context()
    )
    assert _cors(load_function("tenants").lambda_handler(event, lambda_context)) == {}
