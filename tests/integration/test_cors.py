"""CORS as template.yaml configures it (the CorsAllowOrigin parameter): API Gateway's preflight on
every path, the header on the API's own answers and on API Gateway's (401, 429), and nothing at all
when the parameter is empty (the default).

Preflights go through ``http_request`` directly: OPTIONS is API Gateway's, not an operation of
docs/openapi.json, so the contract recorder must not see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack_process import Answer, LocalStack, http_request
from tests.integration.conftest import gateway_error, start_test_stack

ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://evil.example.net"

pytestmark = pytest.mark.local_only("starts a local stack with a template parameter set")


@pytest.fixture(scope="module")
def cors_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = start_test_stack(
        tmp_path_factory.mktemp("cors-home"), extra_args=["--parameter", f"CorsAllowOrigin={ORIGIN}"]
    )
    try:
        yield stack
    finally:
        stack.stop()


def _preflight(stack: LocalStack, path: str, origin: str) -> Answer:
    return http_request(
        stack.url,
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-api-key",
        },
    )


def _cors_headers(answer: Answer) -> dict[str, str]:
    return {name: value for name, value in answer.headers.items() if name.startswith("access-control-")}


def test_preflight_from_the_allowed_origin_needs_no_key(cors_stack: LocalStack) -> None:
    # When a browser on the allowed origin sends its preflight for GET /me (no key: browsers send none)
    answer = _preflight(cors_stack, "/me", ORIGIN)
    # Then API Gateway answers it itself, with the template's headers
    assert answer.status == 200
    assert _cors_headers(answer) == {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-headers": "Content-Type,X-API-Key,Idempotency-Key,X-User-Id",
        "access-control-allow-methods": "DELETE,GET,OPTIONS,PATCH,POST,PUT",
        "access-control-max-age": "600",
    }
    # And on a path with a parameter as well
    assert _preflight(cors_stack, "/events/12", ORIGIN).headers["access-control-allow-origin"] == ORIGIN


def test_preflight_from_another_origin_names_only_the_allowed_one(cors_stack: LocalStack) -> None:
    # When a page on another origin sends a preflight
    answer = _preflight(cors_stack, "/me", OTHER_ORIGIN)
    # Then the answer is API Gateway's static one: it names the allowed origin, never the caller's,
    # so the browser refuses the call
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert OTHER_ORIGIN not in answer.raw.decode() + str(answer.headers)


def test_preflight_on_a_path_the_api_lacks_is_missing_authentication_token(cors_stack: LocalStack) -> None:
    # When the preflight is for a resource that does not exist
    answer = _preflight(cors_stack, "/nosuch", ORIGIN)
    # Then it is API Gateway's 403, which carries the origin like every gateway response
    assert answer.status == 403
    assert answer.json == gateway_error(
        answer, "Missing Authentication Token", "missing_authentication_token"
    )
    assert answer.headers["access-control-allow-origin"] == ORIGIN


def test_the_api_answer_carries_the_origin_only_for_the_allowed_one(cors_stack: LocalStack) -> None:
    # Given a tenant
    _, key = cors_stack.create_tenant("pro")
    # When its page on the allowed origin reads /me
    answer = cors_stack.request("GET", "/me", key=key, headers={"Origin": ORIGIN})
    # Then the answer says that origin may read it, and which headers it may see
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "Retry-After" in answer.headers["access-control-expose-headers"]
    # And a page on another origin gets no CORS header (its browser hides the answer)
    other = cors_stack.request("GET", "/me", key=key, headers={"Origin": OTHER_ORIGIN})
    assert other.status == 200
    assert "access-control-allow-origin" not in other.headers
    # And the API's own errors carry it too (422 from validation: the browser can show why)
    bad = cors_stack.request("GET", "/events/01", key=key, headers={"Origin": ORIGIN})
    assert bad.status == 422
    assert bad.headers["access-control-allow-origin"] == ORIGIN
    # And so do answers refused before any route runs (415: a body that is not JSON)
    refused = cors_stack.request(
        "POST", "/events", key=key, raw=b"a=1", headers={"Origin": ORIGIN, "Content-Type": "text/plain"}
    )
    assert refused.status == 415
    assert refused.headers["access-control-allow-origin"] == ORIGIN


def test_gateway_answers_carry_the_origin(cors_stack: LocalStack) -> None:
    # When a page calls without a key
    unauthorized = cors_stack.request("GET", "/me", headers={"Origin": ORIGIN})
    # Then API Gateway's 401 carries the origin, so the page can read why it failed
    assert unauthorized.status == 401
    assert unauthorized.headers["access-control-allow-origin"] == ORIGIN
    # And a basic tenant past its burst gets a 429 that carries it as well
    _, key = cors_stack.create_tenant("basic")
    answers = [cors_stack.request("GET", "/me", key=key, headers={"Origin": ORIGIN}) for _ in range(15)]
    throttled = [answer for answer in answers if answer.status == 429]
    assert throttled, [answer.status for answer in answers]
    assert all(answer.headers["access-control-allow-origin"] == ORIGIN for answer in throttled)


def test_no_cors_without_the_parameter(gateway: LocalStack) -> None:
    # Given the stack with the template's default (CorsAllowOrigin empty)
    _, key = gateway.create_tenant("pro")
    # When a browser sends a preflight
    answer = _preflight(gateway, "/me", ORIGIN)
    # Then API Gateway answers it (SAM's OPTIONS method exists) with no CORS header: browsers refuse
    assert answer.status == 200
    assert _cors_headers(answer) == {}
    # And neither the API's answers nor API Gateway's carry one
    assert _cors_headers(gateway.request("GET", "/me", key=key, headers={"Origin": ORIGIN})) == {}
    assert _cors_headers(gateway.request("GET", "/me", headers={"Origin": ORIGIN})) == {}


def test_a_parameter_the_template_refuses_stops_the_stack(tmp_path: Path) -> None:
    # When the origin is not a scheme://host[:port] (it has a path: CloudFormation's pattern refuses it)
    # Then the stack does not start, and says which parameter and why
    with pytest.raises(RuntimeError, match=r"--parameter: CorsAllowOrigin='https://app.example.com/x' does"):
        start_test_stack(
            tmp_path / "home", extra_args=["--parameter", "CorsAllowOrigin=https://app.example.com/x"]
        )
