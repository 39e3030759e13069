"""The HTTP glue every function shares: media types, body limits, error shapes."""

from __future__ import annotations

from typing import Any

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
