"""DynamoDB transactions on the embedded server, at a cost that does not grow with the table.

Moto's ``TransactWriteItems`` first deep-copies every table the transaction names (all of its
items), to put it back if the transaction is cancelled. Its cost grows with the table: with moto
5.2.6 on this project's machine, one single-item transaction took 10 ms beside 100 items, 42 ms
beside 1,000 and 530 ms beside 10,000 (``bench/events.py`` publishes into one stream). DynamoDB's
does not, and a stream of a few thousand events made the local stack's publishes slow enough to
pass a function's Timeout.

This WSGI middleware, inside the embedded server's lock (no other request runs meanwhile), runs a
transaction of ``Put``, ``Update`` and ``Delete`` items as moto's own single-item operations
(``PutItem``, ``UpdateItem``, ``DeleteItem``), in the transaction's order, each with its own
condition and ``ReturnValues: ALL_OLD`` so that its answer carries the item as it was. When one is
refused for its condition, the others are still tried (DynamoDB reports a reason for every item),
then every applied one is undone from its old image, and the answer is the
``TransactionCanceledException`` moto itself would give: one reason per item, ``None`` for those
that were fine, the item itself where ``ReturnValuesOnConditionCheckFailure`` asks for it. An
error other than a condition (a validation error, an unknown table) undoes what was applied and is
the answer, as moto answers it for the whole transaction.

Everything else goes to moto's own ``TransactWriteItems`` unchanged: a transaction with a
``ConditionCheck`` (no single-item operation checks a condition without writing), with more than
100 items or two on one item (moto's own validation answers), and any shape not read here. The
unit tests run moto's transactions in process (``mock_aws``); ``tests/unit/test_transactions.py``
holds both to the same answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from local.wire import (
    DYNAMODB_CONTENT_TYPE,
    DYNAMODB_TARGET_PREFIX,
    Answer,
    WsgiApp,
    call,
    ok_json,
    read_body,
    request_environ,
    respond,
    transaction_cancelled,
)

TARGET = DYNAMODB_TARGET_PREFIX + "TransactWriteItems"
MAX_ITEMS = 100
_SINGLE = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
# The fields of a transaction item its single-item operation takes as they are.
_PASSED = (
    "TableName",
    "Item",
    "Key",
    "UpdateExpression",
    "ConditionExpression",
    "ExpressionAttributeNames",
    "ExpressionAttributeValues",
    "ReturnValuesOnConditionCheckFailure",
)
_CONDITION_FAILED = "ConditionalCheckFailedException"


def plan(request: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """(operation, request body) for each item, or None when moto's own transaction should run it."""
    items = request.get("TransactItems") if isinstance(request, dict) else None
    if not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS:
        return None
    steps: list[tuple[str, dict[str, Any]]] = []
    for entry in items:
        if not isinstance(entry, dict) or len(entry) != 1:
            return None
        (kind, operation), *_ = entry.items()
        if kind not in _SINGLE or not isinstance(operation, dict) or "TableName" not in operation:
            return None
        if ("Item" if kind == "Put" else "Key") not in operation:
            return None
        body = {field: operation[field] for field in _PASSED if field in operation}
        steps.append((_SINGLE[kind], body | {"ReturnValues": "ALL_OLD"}))
    return steps


def _key_attributes(step: dict[str, Any], key_names: tuple[str, ...]) -> dict[str, Any]:
    source = step.get("Key") or step.get("Item") or {}
    return {name: source[name] for name in key_names if name in source}


def _reason(answer: Answer) -> dict[str, Any]:
    found = answer.json()
    reason: dict[str, Any] = {
        "Code": "ConditionalCheckFailed",
        "Message": found.get("message") or found.get("Message") or "The conditional request failed",
    }
    if "Item" in found:
        reason["Item"] = found["Item"]
    return reason


class ItemLevelTransactions:
    """WSGI middleware in front of moto's app (inside the lock): see the module's docstring.

    ``key_names(table)`` gives a table's key attributes (hash, then range), to undo a put that
    created an item."""

    def __init__(self, app: WsgiApp, key_names: Callable[[str], tuple[str, ...]]) -> None:
        self._app = app
        self._key_names = key_names

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET") != TARGET:
            return self._app(environ, start_response)
        body = read_body(environ)
        try:
            steps = plan(json.loads(body or b"{}"))
        except ValueError:
            steps = None
        if steps is None or len({self._identity(step) for _, step in steps}) != len(steps):
            return self._app(environ, start_response)
        return respond(start_response, self._run(environ, steps))

    def _identity(self, step: dict[str, Any]) -> str:
        key = _key_attributes(step, self._key_names(str(step["TableName"])))
        return json.dumps([step["TableName"], key], sort_keys=True)

    def _single(self, environ: dict[str, Any], operation: str, body: dict[str, Any]) -> Answer:
        headers = {
            "X-Amz-Target": DYNAMODB_TARGET_PREFIX + operation,
            "Content-Type": DYNAMODB_CONTENT_TYPE,
            "Authorization": str(environ.get("HTTP_AUTHORIZATION", "")),
            "Host": str(environ.get("HTTP_HOST", "127.0.0.1")),
        }
        return call(self._app, request_environ("POST", "/", json.dumps(body).encode(), headers))

    def _run(self, environ: dict[str, Any], steps: list[tuple[str, dict[str, Any]]]) -> Answer:
        applied: list[tuple[dict[str, Any], dict[str, Any] | None]] = []  # (step, old item)
        reasons: list[dict[str, Any]] = []
        for operation, step in steps:
            answer = self._single(environ, operation, step)
            if answer.status == 200:
                applied.append((step, answer.json().get("Attributes")))
                reasons.append({"Code": "None"})
            elif answer.error_code() == _CONDITION_FAILED:
                reasons.append(_reason(answer))
            else:
                self._undo(environ, applied)
                return answer
        if len(applied) == len(steps):
            return ok_json({})
        self._undo(environ, applied)
        return transaction_cancelled(reasons)

    def _undo(
        self, environ: dict[str, Any], applied: list[tuple[dict[str, Any], dict[str, Any] | None]]
    ) -> None:
        for step, old in reversed(applied):
            table = str(step["TableName"])
            if old is not None:
                self._single(environ, "PutItem", {"TableName": table, "Item": old})
            else:
                key = _key_attributes(step, self._key_names(table))
                self._single(environ, "DeleteItem", {"TableName": table, "Key": key})
