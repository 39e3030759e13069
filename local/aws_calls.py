"""Records every AWS call a function makes, as IAM will authorize it, for the IAM test tier.

When ``TENANTRY_AWS_CALLS`` names a folder, :func:`install` hooks botocore's ``before-call`` event on
every botocore session the process creates (boto3's default one, and the private sessions that
Powertools' idempotency and parameters utilities open). Each call made while a function's code runs
is turned into the IAM action(s) and resource ARN(s) it needs and appended to
``<folder>/calls-<pid>.jsonl``; calls made outside a function (test set-up, the local stack's own
bookkeeping) are not a function's and are not recorded.

Which function is running:
- in the local gateway, each invocation (and metering) runs with the function's Lambda env, so
  ``AWS_LAMBDA_FUNCTION_NAME`` (``<stack>-<LogicalId>``) names it, as it does on Lambda;
- in unit tests, :func:`acting_as` marks the thread while a handler of a known function runs.

Physical names (``test-TenantsTable``, ``tenantry-local-TenantsTable``) are written as the
template's logical ids (``TenantsTable``), the region/account as the evaluator's fixed ones, so the
records compare with the translated template's policies whatever stack ran them.

Calls made with a session of one of the template's roles (TenantDataRole, assumed by a function
with the session tag ``TenantId``) are that role's, not the function's: they are recorded with the
role's logical id, the session's tenant tag and the request's partition keys
(``dynamodb:LeadingKeys``), so the IAM test evaluates them against that role's conditions.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import boto3
from botocore import handlers

from local import template
from local.template import ACCOUNT_ID, PARTITION, REGION

ENV_VAR = "TENANTRY_AWS_CALLS"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenantry_function", default=None)
_lock = threading.Lock()
_seen: set[tuple[str, ...]] = set()
_state: dict[str, Any] = {"folder": None, "logical_ids": frozenset()}
_hooked: list[bool] = []  # non-empty once the before-call handler is registered


@dataclass(frozen=True)
class Call:
    """One IAM authorization a function's AWS call needs."""

    function: str  # logical id of the function
    action: str  # e.g. dynamodb:GetItem
    resource: str  # ARN, with logical ids for the stack's own resources
    operation: str  # the API operation that needed it, e.g. TransactWriteItems
    test: str  # the pytest test that made it, when known
    role: str = ""  # the template role whose session made the call ("" = the function's own role)
    tenant: str = ""  # that session's TenantId tag
    leading_keys: list[str] | None = field(default=None)  # dynamodb:LeadingKeys; None when none


@contextlib.contextmanager
def acting_as(function_logical_id: str) -> Iterator[None]:
    """Within this block (this thread), AWS calls are made by ``function_logical_id``."""
    token = _current.set(function_logical_id)
    try:
        yield
    finally:
        _current.reset(token)


def install(folder: Path | str, logical_ids: set[str] | frozenset[str]) -> None:
    """Record calls into ``folder``. ``logical_ids`` are the template's resource ids (for naming)."""
    with _lock:
        _state["folder"] = Path(folder)
        _state["logical_ids"] = frozenset(logical_ids)
        first = not _hooked
        if first:
            _hooked.append(True)
    Path(folder).mkdir(parents=True, exist_ok=True)
    if not first:
        return
    # Every botocore session made from now on (botocore's built-in handler list), including the
    # private ones Powertools opens, and boto3's default session if it exists already.
    hooks = (
        ("before-call", _before_call),
        ("before-call.sts.AssumeRole", _before_assume_role),
        ("after-call.sts.AssumeRole", _after_assume_role),
    )
    handlers.BUILTIN_HANDLERS.extend(hooks)
    if boto3.DEFAULT_SESSION is not None:
        for event, handler in hooks:
            boto3.DEFAULT_SESSION.events.register(event, handler)


@contextlib.contextmanager
def recording(folder: Path, logical_ids: set[str] | frozenset[str]) -> Iterator[Path]:
    """Record into ``folder`` within this block only (tests of the recorder itself)."""
    with _lock:
        saved = dict(_state)
    install(folder, logical_ids)
    try:
        yield folder
    finally:
        with _lock:
            _state.update(saved)


def install_from_env(logical_ids: set[str] | frozenset[str]) -> bool:
    folder = os.environ.get(ENV_VAR)
    if folder:
        install(folder, logical_ids)
    return bool(folder)


def current_function() -> str | None:
    explicit = _current.get()
    if explicit is not None:
        return explicit
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    return None if name is None else logical_name(name)


def logical_name(physical: str) -> str:
    """``test-TenantsTable`` → ``TenantsTable`` for the template's ids; anything else unchanged."""
    ids: frozenset[str] = _state["logical_ids"]
    if physical in ids:
        return physical
    for logical_id in ids:
        if physical.endswith("-" + logical_id):
            return logical_id
    return physical


# Access key id → (role logical id, TenantId tag) of the template-role sessions seen being assumed.
_sessions: dict[str, tuple[str, str]] = {}


def _before_assume_role(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["tenantry_assumed"] = dict(params.get("body") or {})


def _after_assume_role(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    form = context.get("tenantry_assumed") or {}
    role = _template_role(str(form.get("RoleArn", "")))
    key_id = (parsed.get("Credentials") or {}).get("AccessKeyId")
    if role is not None and key_id:
        from local.access import TENANT_TAG, session_tag  # noqa: PLC0415 - local.access imports template

        with _lock:
            _sessions[str(key_id)] = (role[0], session_tag(form, TENANT_TAG) or "")


def _template_role(arn: str) -> tuple[str, str] | None:
    """(logical id, ARN as the evaluator names it) of the template role ``arn`` is, if any.

    A role the template names ``!Sub "${AWS::StackName}<suffix>"`` is recognised by its suffix,
    whatever stack (``test``, ``tenantry-local``) made it."""
    from tooling.iam_policy import STACK_NAME  # noqa: PLC0415 - iam_policy is the evaluator's side

    name = arn.rsplit("/", 1)[-1]
    for logical_id, resource in template.template().get("Resources", {}).items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        role_name = (resource.get("Properties") or {}).get("RoleName")
        text = role_name.get("Fn::Sub") if isinstance(role_name, dict) else None
        if isinstance(text, str) and text.startswith("${AWS::StackName}"):
            suffix = text.removeprefix("${AWS::StackName}")
            if name.endswith(suffix):
                return logical_id, f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{STACK_NAME}{suffix}"
    return None


def _session_of(request_signer: Any) -> tuple[str, str] | None:
    credentials = getattr(request_signer, "_credentials", None)
    if credentials is None:
        return None
    with _lock:
        return _sessions.get(credentials.get_frozen_credentials().access_key)


def _leading_keys(service: str, operation: str, params: dict[str, Any]) -> list[str] | None:
    if service != "dynamodb":
        return None
    from local.access import KeySchemas, partition_values  # noqa: PLC0415

    schemas = KeySchemas.by_logical_id()
    found = partition_values(
        operation, _body(params), lambda table, index: schemas.partition_key(logical_name(table), index)
    )
    return None if found is None else sorted(found)


def _before_call(model: Any, params: dict[str, Any], request_signer: Any = None, **_: Any) -> None:
    function = current_function()
    folder: Path | None = _state["folder"]
    if function is None or folder is None:
        return
    service = model.service_model.service_name
    try:
        needed = authorizations(service, model.name, params)
    except Exception as exc:  # noqa: BLE001 - a mapping gap must show up as a failing record, not a crash
        needed = [(f"{model.service_model.signing_name}:{model.name}", f"unmapped ({exc})")]
    session = _session_of(request_signer)
    role, tenant = session if session is not None else ("", "")
    keys = _leading_keys(service, model.name, params) if session is not None else None
    own = keys is not None and keys == [tenant]
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    lines: list[str] = []
    with _lock:
        for action, resource in needed:
            key = (str(folder), function, action, resource, role, str(own))
            if key in _seen:
                continue
            _seen.add(key)
            call = Call(function, action, resource, model.name, test, role, tenant, keys)
            lines.append(json.dumps(asdict(call)))
        if lines:
            with (folder / f"calls-{os.getpid()}.jsonl").open("a", encoding="utf-8") as sink:
                sink.write("".join(line + "\n" for line in lines))


# ---------------------------------------------------------------------- call → IAM authorizations
def _arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


def _body(params: dict[str, Any]) -> dict[str, Any]:
    body = params.get("body") or b"{}"
    loaded = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
    return loaded if isinstance(loaded, dict) else {}


# DynamoDB's transactions are authorized per item, by the item-level action.
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _dynamodb(operation: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    def table(name: str, index: str | None = None) -> str:
        arn = _arn("dynamodb", f"table/{logical_name(name)}")
        return f"{arn}/index/{index}" if index else arn

    if operation == "TransactWriteItems":
        return [
            (f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table(spec["TableName"]))
            for item in body["TransactItems"]
            for kind, spec in item.items()
        ]
    if operation == "TransactGetItems":
        return [("dynamodb:GetItem", table(item["Get"]["TableName"])) for item in body["TransactItems"]]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", table(name)) for name in body["RequestItems"]]
    if "TableName" in body:
        return [(f"dynamodb:{operation}", table(body["TableName"], body.get("IndexName")))]
    return [(f"dynamodb:{operation}", "*")]


def _apigateway(params: dict[str, Any]) -> list[tuple[str, str]]:
    # API Gateway's control plane is authorized by HTTP method on the resource path.
    path = unquote(urlsplit(params["url_path"]).path)
    method = str(params["method"]).upper()
    needed = [(f"apigateway:{method}", f"arn:{PARTITION}:apigateway:{REGION}::{path}")]
    if method == "POST" and _body(params).get("tags"):
        # Creating with tags also needs PUT on the new resource's tags.
        created = quote(f"arn:{PARTITION}:apigateway:{REGION}::{path.rstrip('/')}/NEW", safe="")
        needed.append(("apigateway:PUT", f"arn:{PARTITION}:apigateway:{REGION}::/tags/{created}"))
    return needed


def _ssm(operation: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    names = body.get("Names") or ([body["Name"]] if "Name" in body else [])
    if operation == "GetParametersByPath":
        names = [str(body["Path"]).rstrip("/") + "/*"]
    if not names:
        return [(f"ssm:{operation}", "*")]
    return [(f"ssm:{operation}", _arn("ssm", f"parameter/{str(name).lstrip('/')}")) for name in names]


def _sqs(operation: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    url = body.get("QueueUrl")
    name = body.get("QueueName") or (urlsplit(str(url)).path.rstrip("/").rsplit("/", 1)[-1] if url else None)
    return [(f"sqs:{operation}", _arn("sqs", logical_name(str(name))) if name else "*")]


def _scheduler(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    # REST: /schedules/{Name}, the group in the body (default: "default").
    body = _body(params)
    name = unquote(urlsplit(params["url_path"]).path).rstrip("/").rsplit("/", 1)[-1]
    group = logical_name(str(body.get("GroupName") or "default"))
    needed = [(f"scheduler:{operation}", _arn("scheduler", f"schedule/{group}/{name}"))]
    role_arn = str((body.get("Target") or {}).get("RoleArn") or "")
    if role_arn:
        # Handing the schedule a role to invoke its target with is passing that role.
        role = _template_role(role_arn)
        needed.append(("iam:PassRole", role[1] if role is not None else role_arn))
    return needed


def _sts(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    form = params.get("body") or {}
    arn = str(form.get("RoleArn", ""))
    role = _template_role(arn)
    resource = role[1] if role is not None else arn or "*"
    needed = [(f"sts:{operation}", resource)]
    if operation == "AssumeRole" and any(str(name).startswith("Tags.member.") for name in form):
        needed.append(("sts:TagSession", resource))
    return needed


def authorizations(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs API call ``service.operation`` needs, from its request."""
    if service == "sts":
        return _sts(operation, params)
    if service == "dynamodb":
        return _dynamodb(operation, _body(params))
    if service == "apigateway":
        return _apigateway(params)
    if service == "ssm":
        return _ssm(operation, _body(params))
    if service == "sqs":
        return _sqs(operation, _body(params))
    if service == "scheduler":
        return _scheduler(operation, params)
    # A service nobody taught us yet: recorded as needing "*", which the IAM test then names.
    return [(f"{service}:{operation}", "*")]


def read_calls(folder: Path) -> list[Call]:
    """Every distinct call recorded in ``folder`` (all processes)."""
    calls: dict[tuple[str, str, str, str, bool], Call] = {}
    for path in sorted(folder.glob("calls-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                call = Call(**json.loads(line))
                own = call.leading_keys is not None and call.leading_keys == [call.tenant]
                calls.setdefault((call.function, call.action, call.resource, call.role, own), call)
    return list(calls.values())
