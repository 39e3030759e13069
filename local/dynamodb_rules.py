"""DynamoDB rules moto 5.2 does not enforce, in front of moto: the embedded server's WSGI middleware
(:class:`DynamoDBRules`) and, for moto in process, ``local/inprocess.py`` (both call :func:`serve`).

**A transaction's ``ClientRequestToken``.** On AWS a ``TransactWriteItems`` sent again with the
token of one that succeeded, within 10 minutes, succeeds without writing anything again; with the
same token but other items it fails with ``IdempotentParameterMismatchException``. The event
store relies on it: when a publish's transaction commits and its answer is lost (a 500, a reset
connection), botocore sends the same request again, and AWS answers it as done. Moto ignores the
token and runs the transaction a second time: the stream's HEAD condition then fails on the
publish's own write, and the publish retried at the next position, storing its event twice. Here
the token of every successful transaction is remembered for 10 minutes with a digest of its items.

Only successes are remembered: a transaction that was cancelled or refused wrote nothing, so the
same request sent again is decided anew, as the first one was. The memory is the process's own;
after a restart of the local stack a token is new again (no client's resend spans one: a
function's botocore dies with the stack it runs in).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from local.wire import (
    DYNAMODB,
    DYNAMODB_TARGET_PREFIX,
    Answer,
    WsgiApp,
    call,
    json_error,
    ok_json,
    read_body,
    respond,
    signature,
)

TOKEN_WINDOW_SECONDS = 600.0
# A busy local stack makes a few hundred transactions a second, each with a fresh token: the
# memory keeps a 16-byte digest of each request's items, and at most this many tokens (the oldest
# go first; botocore's resends come within seconds, long before).
MAX_TOKENS = 200_000
Scope = tuple[str, str]  # region, token (one account, locally)


class TransactionTokens:
    """Tokens of successful transactions, each with its request's items, for 10 minutes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_tokens: int = MAX_TOKENS) -> None:
        self._clock = clock
        self._max_tokens = max_tokens
        self._seen: OrderedDict[Scope, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(items: Any) -> bytes:
        text = json.dumps(items, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=16).digest()

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            _, (_, at) = next(iter(self._seen.items()))
            if now - at < TOKEN_WINDOW_SECONDS and len(self._seen) <= self._max_tokens:
                return
            self._seen.popitem(last=False)

    def committed(self, scope: Scope, items: bytes) -> bool | None:
        """True if ``scope``'s token committed these items, False if it committed others, None
        if it is unused (or its 10 minutes are over)."""
        with self._lock:
            self._forget_expired(self._clock())
            seen = self._seen.get(scope)
        return None if seen is None else seen[0] == items

    def remember(self, scope: Scope, items: bytes) -> None:
        with self._lock:
            self._seen[scope] = (items, self._clock())
            self._seen.move_to_end(scope)
            self._forget_expired(self._clock())

    def __len__(self) -> int:
        return len(self._seen)


TOKENS = TransactionTokens()


def serve(operation: str, region: str, body: bytes, run: Callable[[], Answer]) -> Answer:
    """The answer to one DynamoDB request under the token rule; ``run`` has moto answer it."""
    if operation != "TransactWriteItems":
        return run()
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return run()  # moto refuses it as it should
    token = request.get("ClientRequestToken") if isinstance(request, dict) else None
    if not token:
        return run()
    scope = (region, str(token))
    items = TOKENS.digest(request.get("TransactItems"))
    committed = TOKENS.committed(scope, items)
    if committed is False:
        return json_error(
            DYNAMODB,
            "IdempotentParameterMismatchException",
            "Request with the same client request token but different parameters was already used",
        )
    if committed:
        return ok_json({})
    answer = run()
    if answer.status == 200:
        TOKENS.remember(scope, items)
    return answer


class DynamoDBRules:
    """WSGI middleware in front of moto's app, inside the embedded server's lock (a token is
    checked and remembered in the same turn its transaction runs)."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith(DYNAMODB_TARGET_PREFIX):
            return self._app(environ, start_response)
        signed = signature(str(environ.get("HTTP_AUTHORIZATION", "")))
        answer = serve(
            target.removeprefix(DYNAMODB_TARGET_PREFIX),
            signed.region if signed is not None else "",
            read_body(environ),
            lambda: call(self._app, environ),
        )
        return respond(start_response, answer)
