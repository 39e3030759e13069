"""AWS answers as they travel on the wire, for the parts of the local stack that answer in AWS's
place (faults, IAM refusals, the rules moto leaves out) or call moto themselves.

One :class:`Answer` (status, headers, body) is what each of them decides; it is written to a
WSGI ``start_response`` in front of the embedded server, or handed to botocore as its
``AWSResponse`` for moto in process, so the SDK parses (and retries, or not) exactly what it would
parse from AWS.
"""

from __future__ import annotations

import io
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.awsrequest import AWSResponse

DYNAMODB = "dynamodb"
SSM = "ssm"
APIGATEWAY = "apigateway"
DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."
DYNAMODB_CONTENT_TYPE = "application/x-amz-json-1.0"
_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,\s]+)/[^/]+/(?P<region>[^/]+)/(?P<service>[^/]+)/")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}

    def error_code(self) -> str:
        """The error's code: DynamoDB's ``__type`` (after its ``#``) or API Gateway's header."""
        for name, value in self.headers:
            if name.lower() == "x-amzn-errortype":
                return value.split(":", 1)[0]
        try:
            kind = self.json().get("__type", "")
        except ValueError:
            return ""
        return str(kind).rpartition("#")[2]


@dataclass(frozen=True, slots=True)
class Signature:
    """Who signed a request and for what, read from its SigV4 ``Authorization`` header."""

    access_key_id: str
    region: str
    service: str


def signature(authorization: str | bytes | None) -> Signature | None:
    text = authorization.decode() if isinstance(authorization, bytes) else authorization or ""
    match = _CREDENTIAL.search(text)
    return None if match is None else Signature(match["key"], match["region"], match["service"])


def json_error(service: str, code: str, message: str, status: int = 400, **extra: Any) -> Answer:
    """An error in the service's own protocol: REST-JSON (API Gateway) or JSON 1.0/1.1."""
    if service == APIGATEWAY:
        # REST-JSON: the code travels in a header, the body carries the message.
        payload: dict[str, Any] = {"message": message}
        headers: tuple[tuple[str, str], ...] = (
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", code),
        )
    else:
        prefix = "com.amazonaws.dynamodb.v20120810#" if service == DYNAMODB else ""
        payload = {"__type": prefix + code, **extra}
        # TransactionCanceledException spells it "Message"; the other DynamoDB errors "message".
        payload["Message" if "CancellationReasons" in extra else "message"] = message
        content_type = DYNAMODB_CONTENT_TYPE if service == DYNAMODB else "application/x-amz-json-1.1"
        headers = (("Content-Type", content_type),)
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Answer(status, (*headers, ("x-amzn-RequestId", uuid.uuid4().hex)), body)


def transaction_cancelled(reasons: list[dict[str, Any]]) -> Answer:
    """DynamoDB's TransactionCanceledException: one reason per item, ``{"Code": "None"}`` for the
    items that were fine."""
    listed = ", ".join(str(reason["Code"]) for reason in reasons)
    return json_error(
        DYNAMODB,
        "TransactionCanceledException",
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{listed}]",
        CancellationReasons=reasons,
    )


def ok_json(payload: Any) -> Answer:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Answer(
        200, (("Content-Type", DYNAMODB_CONTENT_TYPE), ("x-amzn-RequestId", uuid.uuid4().hex)), body
    )


# ---------------------------------------------------------------------- WSGI (the embedded server)
def read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put an equal stream back for the next app."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def call(app: WsgiApp, environ: dict[str, Any]) -> Answer:
    """Run ``app`` on ``environ`` and collect its answer."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return lambda _data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    headers = tuple((name, value) for name, value in captured["headers"] if name.lower() != "content-length")
    return Answer(int(str(captured["status"]).split(" ", 1)[0]), headers, body)


def respond(start_response: Callable[..., Any], answer: Answer) -> list[bytes]:
    """Write ``answer`` as a WSGI app's result."""
    try:
        reason = HTTPStatus(answer.status).phrase
    except ValueError:
        reason = "Error"
    start_response(f"{answer.status} {reason}", [*answer.headers, ("Content-Length", str(len(answer.body)))])
    return [answer.body]


def request_environ(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """A WSGI environ for a request made by the local stack itself (to moto's app, in process)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        else:
            environ[f"HTTP_{key}"] = value
    return environ


# ---------------------------------------------------------------------- botocore (moto in process)
class RawBody(io.BytesIO):
    """An answer's body as botocore reads it (``stream()``, as from urllib3's raw response), over
    bytes already in memory."""

    def stream(self, *_: Any, **__: Any) -> Iterable[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def to_botocore(url: str, answer: Answer) -> AWSResponse:
    from botocore.awsrequest import AWSResponse  # noqa: PLC0415 - botocore is heavy to import

    # AWSResponse wraps any mapping in its own HeadersDict; the stubs name only http.client's type.
    return AWSResponse(url, answer.status, dict(answer.headers), RawBody(answer.body))  # type: ignore[arg-type]


def from_botocore(response: Any) -> Answer:
    return Answer(int(response.status_code), tuple(response.headers.items()), bytes(response.content))
