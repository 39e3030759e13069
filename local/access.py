"""IAM's tenant wall, enforced locally: what ``dynamodb:LeadingKeys`` does for TenantDataRole.

On AWS, a tenant's request reads and writes DynamoDB with a session of TenantDataRole tagged
``TenantId``, and IAM refuses any item whose partition key is not that tag. Moto checks no IAM, so
the embedded stack does it here, with DynamoDB's own ``AccessDeniedException``:

- **Sessions.** An ``sts:AssumeRole`` with a ``TenantId`` session tag is answered by moto's STS;
  the answer's access key id is recorded with the tag. Every later request signed with that key
  (the key id is in the SigV4 ``Authorization`` header) is that tenant's.
- **The decision** (:func:`denial`): GetItem, PutItem, UpdateItem, DeleteItem, Query,
  BatchGetItem, BatchWriteItem, TransactGetItems and TransactWriteItems (Put, Update, Delete and
  ConditionCheck) pass only if every key they name has the tenant as partition key (a query's
  key condition, for a table or an index), and only on the tables and with the actions
  TenantDataRole's policy in template.yaml grants (no key table, no write to Tenants). Scan is
  always refused, as is everything that is not item access (the role allows none of it).
  Requests with other credentials pass untouched: the function roles are not modelled here.

It decides from a request's headers and body only, so one decision serves every transport: the
WSGI wrapper :class:`EnforcingApp` (in front of moto's server app) and, for unit tests with moto
in process, :func:`install_botocore_enforcement` (the same check on botocore's ``before-send``).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from local import template
from local.wire import RawBody, read_body, signature

TENANT_TAG = "TenantId"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."
ACCESS_DENIED_TYPE = "com.amazon.coral.service#AccessDeniedException"

_ACCESS_KEY_XML = re.compile(r"<AccessKeyId>([^<]+)</AccessKeyId>")
_ARN_XML = re.compile(r"<Arn>([^<]+)</Arn>")
# One comparison of a key condition: ``name = :value`` or ``:value = name`` (names may be #aliases).
_EQUALITY = re.compile(r"^\(*\s*([#\w.]+)\s*=\s*(:\w+)\s*\)*$|^\(*\s*(:\w+)\s*=\s*([#\w.]+)\s*\)*$")
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TenantSession:
    tenant_id: str
    arn: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>


class TenantSessions:
    """Access key id → the tenant its session was tagged with (thread-safe)."""

    def __init__(self) -> None:
        self._sessions: dict[str, TenantSession] = {}
        self._lock = threading.Lock()

    def record(self, form: Mapping[str, str], access_key_id: str, arn: str) -> None:
        """Remember an AssumeRole answer if the request tagged the session with a tenant."""
        tenant = session_tag(form, TENANT_TAG)
        if tenant is None or not access_key_id:
            return
        with self._lock:
            self._sessions[access_key_id] = TenantSession(tenant, arn)

    def lookup(self, access_key_id: str | None) -> TenantSession | None:
        if not access_key_id:
            return None
        with self._lock:
            return self._sessions.get(access_key_id)

    def __len__(self) -> int:
        return len(self._sessions)


def session_tag(form: Mapping[str, str], key: str) -> str | None:
    """The value of session tag ``key`` in an AssumeRole query form (``Tags.member.N.Key``)."""
    if form.get("Action") != "AssumeRole":
        return None
    for name, value in form.items():
        if name.startswith("Tags.member.") and name.endswith(".Key") and value == key:
            found = form.get(name[: -len("Key")] + "Value")
            return found or None
    return None


class KeySchemas:
    """Partition key attribute of each table and index, from template.yaml (local names)."""

    def __init__(self, stack_name: str = template.LOCAL_STACK_NAME) -> None:
        self._tables: dict[str, str] = {}
        self._indexes: dict[tuple[str, str], str] = {}
        for definition in template.table_definitions(stack_name).values():
            name = str(definition["TableName"])
            self._tables[name] = _hash_key(definition["KeySchema"])
            for index in [
                *definition.get("GlobalSecondaryIndexes", []),
                *definition.get("LocalSecondaryIndexes", []),
            ]:
                self._indexes[(name, str(index["IndexName"]))] = _hash_key(index["KeySchema"])

    def partition_key(self, table: str, index: str | None = None) -> str | None:
        if index is not None:
            return self._indexes.get((table, index))
        return self._tables.get(table)

    @classmethod
    def by_logical_id(cls) -> KeySchemas:
        """Tables named by their template logical ids (the IAM test tier's naming)."""
        schemas = cls.__new__(cls)
        schemas._tables, schemas._indexes = {}, {}
        for logical_id, resource in template.resources_of_type("AWS::DynamoDB::Table").items():
            properties = resource["Properties"]
            schemas._tables[logical_id] = _hash_key(properties["KeySchema"])
            for index in [
                *properties.get("GlobalSecondaryIndexes", []),
                *properties.get("LocalSecondaryIndexes", []),
            ]:
                schemas._indexes[(logical_id, str(index["IndexName"]))] = _hash_key(index["KeySchema"])
        return schemas


def _hash_key(key_schema: Iterable[Mapping[str, Any]]) -> str:
    return next(str(part["AttributeName"]) for part in key_schema if part["KeyType"] == "HASH")


class Grants:
    """Which actions the role's policy in template.yaml allows on which table (or its indexes).

    The role's statements all carry the LeadingKeys condition (a unit test evaluates that policy);
    here they say which tables and actions exist at all: the key table, a write to Tenants or a
    Scan are refused whatever the key."""

    def __init__(self, stack_name: str = template.LOCAL_STACK_NAME, role: str = "TenantDataRole") -> None:
        self._actions: dict[str, set[str]] = {}
        resource = template.template().get("Resources", {}).get(role) or {}
        for policy in (resource.get("Properties") or {}).get("Policies") or []:
            for statement in policy["PolicyDocument"]["Statement"]:
                if statement.get("Effect") != "Allow":
                    continue
                actions = set(_listed(statement.get("Action")))
                for target in _listed(statement.get("Resource")):
                    name = _table_of(target, stack_name)
                    if name is not None:
                        self._actions.setdefault(name, set()).update(actions)

    def allows(self, action: str, table: str, index: str | None = None) -> bool:
        if index is None:
            return action in self._actions.get(table, set())
        return any(action in self._actions.get(f"{table}/index/{name}", set()) for name in (index, "*"))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _table_of(resource: Any, stack_name: str) -> str | None:
    """``!GetAtt X.Arn`` → X's local name; ``!Sub "${X.Arn}/index/*"`` → that name + ``/index/*``."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        return template.local_table_name(logical_id, stack_name) if attribute == "Arn" else None
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        found = re.fullmatch(r"\$\{(\w+)\.Arn\}(/index/[\w.*-]+)?", resource["Fn::Sub"])
        if found is not None:
            return template.local_table_name(found[1], stack_name) + (found[2] or "")
    return None


@dataclass(frozen=True, slots=True)
class Denied:
    action: str  # dynamodb:GetItem…
    table: str

    def message(self, session: TenantSession) -> str:
        resource = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self.table or '*'}"
        return (
            f"User: {session.arn} is not authorized to perform: {self.action} on resource: {resource} "
            f"because no identity-based policy allows the {self.action} action"
        )


def _string(typed: Any) -> str | None:
    """The text of a DynamoDB-JSON value ({"S": …}); None for anything else."""
    if isinstance(typed, dict) and isinstance(typed.get("S"), str):
        return str(typed["S"])
    return None


def _key_is_tenant(key: Any, table: str, tenant: str, schemas: KeySchemas) -> bool:
    attribute = schemas.partition_key(table)
    return attribute is not None and isinstance(key, dict) and _string(key.get(attribute)) == tenant


def _query_partition(body: Mapping[str, Any], attribute: str | None) -> str | None:
    """The partition key value a query's key condition fixes (``attribute`` = value), if any."""
    if attribute is None:
        return None
    legacy = body.get("KeyConditions")
    if isinstance(legacy, dict) and attribute in legacy:
        condition = legacy[attribute]
        values = condition.get("AttributeValueList") or []
        exact = condition.get("ComparisonOperator") == "EQ" and len(values) == 1
        return _string(values[0]) if exact else None
    expression = str(body.get("KeyConditionExpression", ""))
    names: Mapping[str, str] = body.get("ExpressionAttributeNames") or {}
    values_by_name: Mapping[str, Any] = body.get("ExpressionAttributeValues") or {}
    for part in _AND.split(expression.strip()):
        match = _EQUALITY.match(part.strip())
        if match is None:
            continue
        name, placeholder = (match[1], match[2]) if match[1] else (match[4], match[3])
        if names.get(name, name) == attribute:
            return _string(values_by_name.get(placeholder))
    return None


def _query_is_tenant(body: Mapping[str, Any], tenant: str, schemas: KeySchemas) -> bool:
    attribute = schemas.partition_key(str(body.get("TableName", "")), body.get("IndexName"))
    return _query_partition(body, attribute) == tenant


def partition_values(
    operation: str, body: Mapping[str, Any], partition_key: Callable[[str, str | None], str | None]
) -> set[str] | None:
    """Every partition key value a request names (IAM's ``dynamodb:LeadingKeys``); None if none.

    A key whose partition value cannot be read (unknown table, not text) counts as ``""``, which
    never equals a tenant."""

    def of(table: str, key: Any) -> str:
        attribute = partition_key(table, None)
        value = _string(key.get(attribute)) if attribute is not None and isinstance(key, dict) else None
        return value or ""

    found: set[str] = set()
    if operation in ("GetItem", "DeleteItem", "UpdateItem", "PutItem"):
        found.add(of(str(body.get("TableName", "")), body.get("Item" if operation == "PutItem" else "Key")))
    elif operation == "Query":
        table, index = str(body.get("TableName", "")), body.get("IndexName")
        found.add(_query_partition(body, partition_key(table, str(index) if index else None)) or "")
    elif operation == "BatchGetItem":
        for name, request in (body.get("RequestItems") or {}).items():
            found.update(of(name, key) for key in (request or {}).get("Keys") or [])
    elif operation == "BatchWriteItem":
        for name, requests in (body.get("RequestItems") or {}).items():
            for request in requests or []:
                put, delete = request.get("PutRequest"), request.get("DeleteRequest")
                found.add(of(name, put.get("Item") if put else (delete or {}).get("Key")))
    elif operation in ("TransactWriteItems", "TransactGetItems"):
        for entry in body.get("TransactItems") or []:
            for kind, item in (entry or {}).items():
                key = (item or {}).get("Item") if kind == "Put" else (item or {}).get("Key")
                found.add(of(str((item or {}).get("TableName", "")), key))
    return found or None


def denial(
    operation: str, body: Mapping[str, Any], tenant: str, schemas: KeySchemas, grants: Grants | None = None
) -> Denied | None:
    """Why a session tagged ``tenant`` may not run ``operation`` with ``body``; None if it may.

    Without ``grants`` every table and item action is granted, so only the leading key decides."""

    def refused(action: str, table: str, key_ok: bool, index: str | None = None) -> Denied | None:
        granted = grants is None or grants.allows(f"dynamodb:{action}", table, index)
        return None if key_ok and granted else Denied(f"dynamodb:{action}", table)

    table = str(body.get("TableName", ""))
    if operation in ("GetItem", "DeleteItem", "UpdateItem"):
        return refused(operation, table, _key_is_tenant(body.get("Key"), table, tenant, schemas))
    if operation == "PutItem":
        return refused(operation, table, _key_is_tenant(body.get("Item"), table, tenant, schemas))
    if operation == "Query":
        index = body.get("IndexName")
        return refused(
            operation, table, _query_is_tenant(body, tenant, schemas), str(index) if index else None
        )
    checks: list[tuple[str, str, Any]] = []  # (action, table, key)
    if operation == "BatchGetItem":
        for name, request in (body.get("RequestItems") or {}).items():
            checks.extend(("BatchGetItem", name, key) for key in (request or {}).get("Keys") or [None])
    elif operation == "BatchWriteItem":
        for name, requests in (body.get("RequestItems") or {}).items():
            for request in requests or [{}]:
                put, delete = request.get("PutRequest"), request.get("DeleteRequest")
                checks.append(("BatchWriteItem", name, put.get("Item") if put else (delete or {}).get("Key")))
    elif operation in ("TransactWriteItems", "TransactGetItems"):
        # A transaction is authorized as its items' own actions.
        actions = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
        actions |= {"ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
        for entry in body.get("TransactItems") or []:
            for kind, item in (entry or {}).items():
                key = (item or {}).get("Item") if kind == "Put" else (item or {}).get("Key")
                checks.append((actions.get(kind, kind), str((item or {}).get("TableName", "")), key))
    else:
        # Scan has no leading key to check and every other operation is not item access: the role
        # allows neither.
        return Denied(f"dynamodb:{operation}", table)
    for action, name, key in checks:
        found = refused(action, name, _key_is_tenant(key, name, tenant, schemas))
        if found is not None:
            return found
    return None


def _header(headers: Mapping[str, str], name: str) -> str:
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


class Enforcer:
    """The decision for one request, given its headers and body; shared by every transport."""

    def __init__(
        self, schemas: KeySchemas, grants: Grants | None = None, sessions: TenantSessions | None = None
    ) -> None:
        self.schemas = schemas
        self.grants = grants
        self.sessions = sessions or TenantSessions()
        self.denied = 0

    def check(self, headers: Mapping[str, str], body: bytes) -> bytes | None:
        """The AccessDeniedException body to answer with, or None to let the request through."""
        signed = signature(_header(headers, "Authorization"))
        if signed is None or signed.service != "dynamodb":
            return None
        return self.check_dynamodb(signed.access_key_id, _header(headers, "X-Amz-Target"), body)

    def check_dynamodb(self, access_key_id: str, target: str, body: bytes) -> bytes | None:
        """The same decision from its parts: who signed, which operation, which JSON body."""
        session = self.sessions.lookup(access_key_id)
        if session is None:
            return None
        operation = target.removeprefix(DYNAMODB_TARGET_PREFIX)
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            parsed = {}
        refused = denial(
            operation,
            parsed if isinstance(parsed, dict) else {},
            session.tenant_id,
            self.schemas,
            self.grants,
        )
        if refused is None:
            return None
        self.denied += 1
        return json.dumps({"__type": ACCESS_DENIED_TYPE, "Message": refused.message(session)}).encode()

    def record_sts_answer(self, form: Mapping[str, str], answer: bytes) -> None:
        key = _ACCESS_KEY_XML.search(answer.decode("utf-8", "replace"))
        arn = _ARN_XML.search(answer.decode("utf-8", "replace"))
        if key is not None:
            self.sessions.record(form, key[1], arn[1] if arn else "")


class EnforcingApp:
    """WSGI middleware in front of moto's app: records tenant sessions, refuses what IAM would."""

    def __init__(self, app: Callable[..., Iterable[bytes]], enforcer: Enforcer) -> None:
        self._app = app
        self.enforcer = enforcer

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        signed = signature(str(environ.get("HTTP_AUTHORIZATION", "")))
        if signed is None or signed.service not in ("dynamodb", "sts"):
            return self._app(environ, start_response)
        body = read_body(environ)
        if signed.service == "dynamodb":
            headers = {"Authorization": str(environ.get("HTTP_AUTHORIZATION", ""))}
            headers["X-Amz-Target"] = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            refusal = self.enforcer.check(headers, body)
            if refusal is not None:
                start_response(
                    "400 Bad Request",
                    [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("Content-Length", str(len(refusal))),
                        ("x-amzn-RequestId", str(uuid.uuid4())),
                    ],
                )
                return [refusal]
            return self._app(environ, start_response)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("Action") != "AssumeRole":
            return self._app(environ, start_response)
        answer = b"".join(self._app(environ, start_response))
        self.enforcer.record_sts_answer(form, answer)
        return [answer]


# ---------------------------------------------------------------------- moto in process (unit tests)
def install_botocore_enforcement(events: Any, enforcer: Enforcer) -> Callable[[], None]:
    """Register the same check on a botocore event system (moto in process); returns the undo.

    The check runs on ``before-call``, the one hook that can answer instead of sending (moto's own
    stub sits on ``before-send``, where every handler runs). Only clients created after this call
    carry the handlers (botocore copies the session's events into each new client)."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders  # noqa: PLC0415 - botocore is there in tests

    def before_call(params: dict[str, Any], request_signer: Any, **_: Any) -> Any:
        credentials = getattr(request_signer, "_credentials", None)
        if credentials is None:
            return None
        headers = params.get("headers") or {}
        body = params.get("body") or b""
        refusal = enforcer.check_dynamodb(
            credentials.get_frozen_credentials().access_key,
            _header(headers, "X-Amz-Target"),
            body.encode() if isinstance(body, str) else bytes(body),
        )
        if refusal is None:
            return None
        response_headers = HTTPHeaders()
        response_headers["Content-Type"] = "application/x-amz-json-1.0"
        response_headers["x-amzn-RequestId"] = str(uuid.uuid4())
        http = AWSResponse(str(params.get("url", "")), 400, response_headers, RawBody(refusal))
        error = json.loads(refusal)
        parsed = {
            "Error": {"Code": "AccessDeniedException", "Message": error["Message"]},
            "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": dict(response_headers)},
        }
        return http, parsed

    def before_sts_call(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        body = params.get("body")
        context["tenantry_assume_role_form"] = {str(k): str(v) for k, v in (body or {}).items()}

    def after_sts_call(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        credentials = parsed.get("Credentials") or {}
        arn = str((parsed.get("AssumedRoleUser") or {}).get("Arn", ""))
        form = context.get("tenantry_assume_role_form") or {}
        enforcer.sessions.record(form, str(credentials.get("AccessKeyId", "")), arn)

    handlers = (
        ("before-call.dynamodb", before_call),
        ("before-call.sts.AssumeRole", before_sts_call),
        ("after-call.sts.AssumeRole", after_sts_call),
    )
    for event, handler in handlers:
        events.register(event, handler, unique_id=f"tenantry-access-{event}")

    def undo() -> None:
        for event, _handler in handlers:
            events.unregister(event, unique_id=f"tenantry-access-{event}")

    return undo
