"""docs/openapi.json: a valid OpenAPI 3.1 document whose every operation documents the error body
for every status it can answer, with examples that fit; and the checker the integration suite
runs over its own traffic (tests/contract.py), shown to catch what it must."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tests.contract import Contract, Observed

GATEWAY = {"401", "403", "429", "500", "502", "504"}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


def test_the_document_is_valid_openapi_3_1(contract: Contract) -> None:
    validate(contract.spec)


def test_every_authorized_operation_documents_the_gateways_answers_with_the_error_body(
    contract: Contract,
) -> None:
    for path, operations in contract.spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation["security"]:
                assert set(responses) >= GATEWAY, (method, path)
            for status, response in responses.items():
                if int(status) >= 400 and not (path in ("/health", "/ready") and status == "503"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= set(responses), (method, path)


def test_the_api_answers_201_where_it_creates(contract: Contract) -> None:
    for method, path in (("post", "/tenants"), ("post", "/tenants/{tenant_id}/keys"), ("post", "/events")):
        assert set(contract.spec["paths"][path][method]["responses"]) & {"200", "201"} == {"201"}


def test_the_publish_body_is_one_event_or_a_batch(contract: Contract) -> None:
    body = contract.spec["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    titles = [option.get("title") for option in body["oneOf"]]
    assert titles == ["SingleEventIn", "EventBatch"]


def test_every_body_has_an_example_that_fits_its_schema(contract: Contract) -> None:
    components = contract.spec["components"]
    for path, operations in contract.spec["paths"].items():
        for method, operation in operations.items():
            bodies = [("request", operation.get("requestBody", {})), *operation["responses"].items()]
            for name, body in bodies:
                for media_type, content in (body.get("content") or {}).items():
                    assert "example" in content or "examples" in content, (method, path, name, media_type)
                    if media_type != "application/json" or "example" not in content:
                        continue
                    validator = Draft202012Validator({**content["schema"], "components": components})
                    errors = [error.message for error in validator.iter_errors(content["example"])]
                    assert errors == [], (method, path, name, errors)


def test_the_headers_clients_send_and_read_are_documented(contract: Contract) -> None:
    spec = contract.spec
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    headers_in = {
        parameter["name"].lower()
        for operations in spec["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "header"
    }
    assert {"idempotency-key", "x-user-id"} <= headers_in
    throttled = spec["paths"]["/events"]["post"]["responses"]["429"]
    assert "Retry-After" in throttled["headers"]


def _seen(
    status: int, body: object, path: str = "/events/7", content_type: str = "application/json"
) -> Observed:
    return Observed("GET", path, status, content_type, json.dumps(body).encode())


def test_the_checker_passes_a_documented_answer(contract: Contract) -> None:
    error = {
        "message": "No event at position 7",
        "error": "not_found",
        "request_id": "r",
        "field": "position",
    }
    assert contract.problems(_seen(404, error)) == []


def test_the_checker_catches_an_undocumented_status(contract: Contract) -> None:
    assert "status not documented" in contract.problems(_seen(409, {"message": "x"}))[0]


def test_the_checker_catches_a_body_off_the_schema(contract: Contract) -> None:
    # API Gateway's old ACCESS_DENIED body: capital M, no error, no request_id
    problems = contract.problems(_seen(403, {"Message": "User is not authorized to access this resource"}))
    assert any("'message' is a required property" in problem for problem in problems)


def test_the_checker_ignores_what_is_not_an_operation(contract: Contract) -> None:
    assert contract.problems(_seen(403, {"message": "Missing Authentication Token"}, path="/nothing")) == []
    assert contract.problems(_seen(200, {}, path="/_test/echo")) == []


def test_a_chat_stream_is_checked_event_by_event(contract: Contract) -> None:
    # Given a stream as the chat route sends it, and one whose delta lacks its text
    good = (
        b'event: start\ndata: {"session_id":"s1","model":"echo-1"}\n\n: keep-alive\n\n'
        b'event: delta\ndata: {"text":"hi"}\n\n'
        b'event: done\ndata: {"session_id":"s1","model":"echo-1","tokens":{"input":1,"output":1},'
        b'"stop_reason":"end_turn"}\n\n'
    )
    bad = b'event: start\ndata: {"session_id":"s1","model":"echo-1"}\n\nevent: delta\ndata: {"txt":"hi"}\n\n'
    failed = b'event: error\ndata: {"message":"busy","error":"upstream_busy","request_id":"r"}\n\n'
    # Then the checker reads each event against the documented events: the first conforms
    stream = "text/event-stream"
    assert contract.problems(Observed("POST", "/chat", 200, stream, good)) == []
    assert contract.problems(Observed("POST", "/chat", 200, stream, failed)) == []
    assert contract.problems(Observed("POST", "/chat", 200, stream, bad)) != []
