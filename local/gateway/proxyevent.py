"""The integration request: what a Lambda function is handed for one HTTP request.

API Gateway turns a request into a REST proxy event (payload v1) for the route's function, and into
a REQUEST authorizer event for the authorizer; the two share their request fields (resource, path,
headers, query, path parameters, ``requestContext``), so both are built here from the same parts
and a handler and the authorizer never see the same request differently. The method ARN the
authorizer's policy is checked against is spelled here too, for the same reason.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from local.embedded import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from local.gateway.api import ApiModel
    from local.gateway.exchange import Exchange
    from local.gateway.server import HttpRequest


class ProxyEvents:
    """Builds the events of one local API (``api_id``, as ``model`` describes it), served on
    ``default_host`` when a request names no Host. A template reload builds a new one."""

    def __init__(self, api_id: str, default_host: str, model: ApiModel) -> None:
        self.api_id = api_id
        self.default_host = default_host
        self.model = model

    def method_arn(self, method: str, path: str) -> str:
        return (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/"
            f"{self.model.stage}/{method}/{path.lstrip('/')}"
        )

    def proxy_event(
        self, request: HttpRequest, exchange: Exchange, query_string: str, path_params: dict[str, str]
    ) -> dict[str, Any]:
        event = self._request_fields(request, exchange, query_string, path_params)
        if exchange.authorizer is not None:
            event["requestContext"]["authorizer"] = {
                "principalId": exchange.authorizer.principal_id,
                **exchange.authorizer.context,
                "integrationLatency": int((time.perf_counter() - exchange.started) * 1000),
            }
        event["body"], event["isBase64Encoded"] = _body(request, self.model.binary_media_types)
        return event

    def authorizer_event(
        self, request: HttpRequest, exchange: Exchange, query_string: str, path_params: dict[str, str]
    ) -> dict[str, Any]:
        fields = self._request_fields(request, exchange, query_string, path_params)
        return {
            "type": "REQUEST",
            "methodArn": self.method_arn(request.method, exchange.path),
            **fields,
        }

    def _request_fields(
        self, request: HttpRequest, exchange: Exchange, query_string: str, path_params: dict[str, str]
    ) -> dict[str, Any]:
        """What the proxy event and the REQUEST authorizer event share."""
        headers, multi_headers = _header_maps(request)
        query, multi_query = _query_maps(query_string)
        assert exchange.route is not None
        return {
            "resource": exchange.route.path,
            "path": exchange.path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": self._request_context(request, exchange),
        }

    def _request_context(self, request: HttpRequest, exchange: Exchange) -> dict[str, Any]:
        route = exchange.route
        host = request.header("Host") or f"{self.default_host}"
        return {
            "resourceId": route.path.strip("/").replace("/", "-")[:10] or "root" if route else "",
            "resourcePath": route.path if route else exchange.path,
            "httpMethod": request.method,
            "extendedRequestId": exchange.request_id[:18],
            "requestTime": exchange.request_time,
            "path": f"/{self.model.stage}{exchange.path}",
            "accountId": ACCOUNT_ID,
            "protocol": request.version,
            "stage": self.model.stage,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": exchange.epoch_ms,
            "requestId": exchange.request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.client_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": request.header("User-Agent"),
                "user": None,
                "apiKey": exchange.api_key,
                "apiKeyId": exchange.api_key_id,
            },
            "domainName": host,
            "apiId": self.api_id,
        }


def _header_maps(request: HttpRequest) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in request.headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return (single or None), (multi or None)


def _query_maps(query_string: str) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        single[name] = value
        multi.setdefault(name, []).append(value)
    return (single or None), (multi or None)


def _body(request: HttpRequest, binary_types: tuple[str, ...]) -> tuple[str | None, bool]:
    """The body as text, or base64 with isBase64Encoded when it is not UTF-8 or its Content-Type
    matches the API's BinaryMediaTypes."""
    if not request.body:
        return None, False
    content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    is_binary = any(
        kind in ("*/*", content_type) or (kind.endswith("/*") and content_type.startswith(kind[:-1]))
        for kind in binary_types
    )
    if not is_binary:
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            is_binary = True
    return base64.b64encode(request.body).decode(), True
