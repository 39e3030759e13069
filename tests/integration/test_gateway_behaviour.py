"""The local gateway behaves like API Gateway: events, limits, its own answers, concurrency, bad input."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO_ROOT, LocalStack, gateway_error

# ---------------------------------------------------------------------------------- events


def test_proxy_event_is_faithful(gateway: LocalStack) -> None:
    # Given a tenant
    tenant_id, key = gateway.create_tenant("pro")
    # When it calls a greedy-path route with repeated query parameters and headers
    answer = gateway.request(
        "POST",
        "/_test/echo/a/b%20c?x=1&x=2&y=",
        key=key,
        body={"hello": "world"},
        headers={"X-Trace": "t-1"},
    )
    # Then the handler got a REST proxy event (payload v1) as API Gateway builds it
    assert answer.status == 200
    event = answer.json["event"]
    assert event["resource"] == "/_test/echo/{proxy+}"
    assert event["path"] == "/_test/echo/a/b c"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"proxy": "a/b c"}
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["headers"]["X-Trace"] == "t-1"
    assert event["multiValueHeaders"]["X-Trace"] == ["t-1"]
    assert json.loads(event["body"]) == {"hello": "world"}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "v1"
    assert context["resourcePath"] == "/_test/echo/{proxy+}"
    assert context["path"] == "/v1/_test/echo/a/b c"
    assert context["requestId"] == answer.headers["x-amzn-requestid"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["apiKeyId"]
    assert context["authorizer"]["tenant_id"] == tenant_id
    assert context["authorizer"]["principalId"] == tenant_id
    assert context["authorizer"]["tier"] == "pro"
    # And the Lambda context and the template's env, with intrinsics resolved to local names
    assert answer.json["context"]["function_name"] == "tenantry-local-EchoFunction"
    assert answer.json["context"]["memory_limit_in_mb"] == "256"
    assert 0 < answer.json["context"]["remaining_ms"] <= 7000
    assert answer.json["context"]["aws_request_id"]
    assert answer.json["env"] == {
        "ECHO_TABLE": "tenantry-local-TenantsTable",
        "ECHO_SUB": "tenantry-local-us-east-1",
        "ECHO_BURST": "10",
        "TENANTS_TABLE": None,
    }
    # And the handler's multi-value headers reach the client
    assert [value for name, value in answer.header_list if name == "Set-Cookie"] == ["a=1", "b=2"]


def test_binary_body_arrives_base64(gateway: LocalStack) -> None:
    # When a body that is not UTF-8 is sent
    payload = bytes(range(256))
    answer = gateway.request("PUT", "/_test/public/bin", raw=payload, headers={"Content-Type": "image/png"})
    # Then the handler gets it base64-encoded, flagged as such
    event = answer.json["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload
    assert "authorizer" not in event["requestContext"]


# ---------------------------------------------------------------------------------- API Gateway's answers


def test_unknown_route_and_unknown_method_are_missing_authentication_token(gateway: LocalStack) -> None:
    for method, path in (("GET", "/nothing-here"), ("DELETE", "/me"), ("GET", "/")):
        answer = gateway.request(method, path)
        assert answer.status == 403, (method, path)
        assert answer.json == gateway_error(
            answer, "Missing Authentication Token", "missing_authentication_token"
        )


def test_handler_crash_is_502_without_a_traceback(gateway: LocalStack) -> None:
    for how in ("raise", "garbage"):
        # When the handler raises, or answers without a statusCode
        answer = gateway.request("GET", f"/_test/crash/{how}")
        # Then API Gateway's 502, and nothing of the exception
        assert answer.status == 502
        assert answer.json == gateway_error(answer, "Internal server error", "server_error")
        assert b"boom" not in answer.raw
    assert gateway.request("GET", "/_test/crash/not").status == 200


def test_body_over_the_handler_limit_is_the_handlers_413(gateway: LocalStack) -> None:
    # When a body over 256 KB reaches a handler
    answer = gateway.request("POST", "/tenants", key=gateway.admin_key, raw=b"{" + b" " * (257 * 1024) + b"}")
    # Then the handler answers 413 with its own error body
    assert answer.status == 413
    assert answer.json["error"]


def test_body_over_the_api_gateway_limit_is_413(gateway: LocalStack) -> None:
    # When a body over API Gateway's 10 MB payload limit arrives
    answer = gateway.request("POST", "/_test/public/big", raw=b"x" * (10 * 1024 * 1024 + 1))
    # Then the gateway refuses it before any handler runs
    assert answer.status == 413
    assert answer.json == gateway_error(answer, "Request Too Long", "request_too_large")


# ---------------------------------------------------------------------------------- usage plans


@pytest.mark.local_only("exact token-bucket counts; API Gateway applies usage-plan throttles best effort")
def test_basic_tenant_is_throttled_at_its_burst(gateway: LocalStack) -> None:
    # Given a basic tenant (10 requests/min, burst 10)
    _, key = gateway.create_tenant("basic")
    # When it sends 12 requests at once
    statuses = [gateway.request("GET", "/me", key=key).status for _ in range(12)]
    # Then the burst passes and the rest is throttled with API Gateway's answer
    assert statuses == [200] * 10 + [429] * 2
    throttled = gateway.request("GET", "/me", key=key)
    assert throttled.json == gateway_error(throttled, "Too Many Requests", "throttled")


def test_enterprise_tenant_is_not_throttled_at_the_same_burst(gateway: LocalStack) -> None:
    _, key = gateway.create_tenant("enterprise")
    statuses = [gateway.request("GET", "/me", key=key).status for _ in range(12)]
    assert statuses == [200] * 12


def test_quota_exhaustion_is_limit_exceeded(gateway: LocalStack) -> None:
    # Given the basic plan's monthly quota lowered to 3 through the API Gateway API
    apigateway = gateway.aws_client("apigateway")
    plan = next(p for p in apigateway.get_usage_plans()["items"] if p["name"].endswith("-basic"))
    original = str(plan["quota"]["limit"])
    apigateway.update_usage_plan(
        usagePlanId=plan["id"], patchOperations=[{"op": "replace", "path": "/quota/limit", "value": "3"}]
    )
    try:
        _, key = gateway.create_tenant("basic")
        # When the tenant sends 5 requests
        answers = [gateway.request("GET", "/me", key=key) for _ in range(5)]
        # Then 3 pass and the rest get API Gateway's quota answer
        assert [answer.status for answer in answers] == [200, 200, 200, 429, 429]
        assert answers[-1].json == gateway_error(answers[-1], "Limit Exceeded", "quota_exceeded")
    finally:
        apigateway.update_usage_plan(
            usagePlanId=plan["id"],
            patchOperations=[{"op": "replace", "path": "/quota/limit", "value": original}],
        )


@pytest.mark.local_only("exact token-bucket counts; API Gateway applies usage-plan throttles best effort")
def test_tier_change_moves_the_key_to_the_new_plan(gateway: LocalStack) -> None:
    # Given a basic tenant that spent its burst
    tenant_id, key = gateway.create_tenant("basic")
    for _ in range(10):
        gateway.request("GET", "/me", key=key)
    assert gateway.request("GET", "/me", key=key).status == 429
    # When it is upgraded to enterprise
    gateway.request("PATCH", f"/tenants/{tenant_id}", key=gateway.admin_key, body={"tier": "enterprise"})
    # Then the enterprise plan's bucket applies
    assert gateway.request("GET", "/me", key=key).status == 200


# ---------------------------------------------------------------------------------- concurrency


@pytest.mark.local_only(
    "the local gateway's threading; on AWS the stage throttles /health (PublicRoutesRateLimit)"
)
def test_sixteen_parallel_clients_get_no_error(gateway: LocalStack) -> None:
    # Given an enterprise tenant (no throttle at this volume)
    _, key = gateway.create_tenant("enterprise")
    calls = [("GET", "/health", None), ("GET", "/me", key), ("GET", "/tenants?limit=5", gateway.admin_key)]

    def client(number: int) -> list[int]:
        return [gateway.request(m, p, key=k).status for m, p, k in calls * 5 if number >= 0]

    # When 16 clients call at once
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(client, range(16)))
    # Then every answer is a 200
    assert all(status == 200 for statuses in results for status in statuses), results
    assert sum(len(statuses) for statuses in results) == 16 * 15


# ---------------------------------------------------------------------------------- bad input on the wire


def _raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_requests_get_400_and_the_gateway_survives(gateway: LocalStack) -> None:
    garbage = [
        b"NONSENSE\r\n\r\n",
        b"GET /health HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"POST /tenants HTTP/1.1\r\nContent-Length: twelve\r\n\r\n",
        b"POST /tenants HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ]
    for data in garbage:
        # When the bytes are not a valid request
        reply = _raw_exchange(gateway.port, data)
        # Then a 400 in API Gateway's shape, and no Python traceback
        assert reply.startswith(b"HTTP/1.1 400"), reply[:80]
        assert b"Traceback" not in reply
        body = json.loads(reply.partition(b"\r\n\r\n")[2])
        assert body["message"] == "Bad Request" and body["error"] == "client_error" and body["request_id"]
    # And the gateway still serves
    assert gateway.request("GET", "/health").status == 200


def test_oversized_headers_are_431_in_the_error_shape(gateway: LocalStack) -> None:
    for data in (
        # one header line far over the limit, and many small ones over API Gateway's 10 KB in total
        b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(120))
        + b"\r\n",
    ):
        reply = _raw_exchange(gateway.port, data)
        assert reply.startswith(b"HTTP/1.1 431"), reply[:80]
        body = json.loads(reply.partition(b"\r\n\r\n")[2])
        assert body["error"] == "client_error" and body["message"] == "Request Header Fields Too Large"
    assert gateway.request("GET", "/health").status == 200


def test_chunked_body_is_accepted(gateway: LocalStack) -> None:
    body = json.dumps({"name": "Chunky", "tier": "basic"}).encode()
    data = (
        b"POST /tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"X-API-Key: {gateway.admin_key}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    assert _raw_exchange(gateway.port, data).startswith(b"HTTP/1.1 201")


# ---------------------------------------------------------------------------------- local extras


def test_access_log_has_the_template_fields_for_a_throttled_request(gateway: LocalStack) -> None:
    # Given a basic tenant throttled once
    tenant_id, key = gateway.create_tenant("basic")
    statuses = [gateway.request("GET", "/me", key=key).status for _ in range(11)]
    assert statuses[-1] == 429
    # Then access.log has the throttled request, with its tenant, in the template's format
    lines = [json.loads(line) for line in (gateway.home / "access.log").read_text().splitlines()]
    mine = [line for line in lines if line["tenantId"] == tenant_id]
    assert len(mine) == 11
    throttled = mine[-1]
    assert throttled["status"] == "429"
    assert throttled["errorType"] == "THROTTLED"
    assert throttled["tier"] == "basic"
    assert throttled["resourcePath"] == "/me"
    assert set(throttled) == {
        "requestId", "tenantId", "tier", "role", "httpMethod", "resourcePath", "status",
        "responseLatency", "integrationLatency", "responseLength", "errorType", "apiKeyId",
        "requestTimeEpoch",
    }  # fmt: skip
    # A throttled request's answer is API Gateway's own, its length counted too
    assert int(throttled["responseLength"]) > 0


def test_swagger_ui_and_openapi_are_served_locally(gateway: LocalStack) -> None:
    docs = gateway.request("GET", "/docs")
    spec = gateway.request("GET", "/openapi.json")
    bundle = gateway.request("GET", "/docs/swagger-ui-bundle.min.js")
    assert docs.status == 200 and b"swagger-ui-bundle" in docs.raw
    assert spec.status == 200 and "/tenants" in spec.json["paths"]
    assert bundle.status == 200 and len(bundle.raw) > 100_000


def test_sam_env_file_points_docker_at_the_embedded_aws(gateway: LocalStack) -> None:
    document = json.loads((gateway.home / "sam-env.json").read_text())
    port = gateway.endpoint_url.rsplit(":", 1)[1]
    assert document["Parameters"]["AWS_ENDPOINT_URL"] == f"http://host.docker.internal:{port}"
    assert document["TenantsFunction"]["TENANTS_TABLE"] == "tenantry-local-TenantsTable"


def test_admin_key_file_is_private(gateway: LocalStack) -> None:
    assert (gateway.home / "admin-key").stat().st_mode & 0o777 == 0o600


def _invoke(home: Path, function: str, event: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tenantry_cli", "invoke", function, "-e", event, "--home", str(home)]
    return subprocess.run(  # noqa: S603 - our own CLI
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_invoke_uses_the_running_stack(gateway: LocalStack) -> None:
    # Given make dev is running on this home / When a function is invoked with a sample event
    result = _invoke(gateway.home, "HealthFunction", "events/health.json")
    # Then stdout holds just the handler's result as JSON, and the logs go to stderr
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["status"] == "healthy"


def test_invoke_without_a_running_stack_starts_its_own(tmp_path: Path) -> None:
    result = _invoke(tmp_path / "home", "TenantsFunction", "events/tenant-list.json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["tenants"] == []


def test_invoke_names_an_unknown_function(tmp_path: Path) -> None:
    result = _invoke(tmp_path / "home", "NoSuchFunction", "events/health.json")
    assert result.returncode == 2
    assert "NoSuchFunction" in result.stderr


@pytest.mark.local_only("the local gateway's sandboxes, through the overlay's echo function")
def test_threads_do_not_share_a_sandbox(gateway: LocalStack) -> None:
    # Powertools resolvers keep the current event in module state: one sandbox serves one request.
    _, key = gateway.create_tenant("enterprise")
    errors: list[str] = []

    def call(index: int) -> None:
        answer = gateway.request("GET", f"/_test/echo/{index}", key=key)
        if answer.json["event"]["pathParameters"]["proxy"] != str(index):
            errors.append(f"{index} got {answer.json['event']['pathParameters']}")

    threads = [threading.Thread(target=call, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
