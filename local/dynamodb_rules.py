"""DynamoDB rules moto 5.2 does not enforce, enforced on its handler (embedded and in process).

**A transaction's ``ClientRequestToken``.** On AWS a ``TransactWriteItems`` sent again with the
token of one that succeeded, within 10 minutes, succeeds without writing anything again; with the
same token but other items it fails with ``IdempotentParameterMismatchException``. The event
store relies on it: when a publish's transaction commits and its answer is lost (a 500, a reset
connection), botocore sends the same request again, and AWS answers it as done. Moto ignores the
token and runs the transaction a second time: the stream's HEAD condition then fails on the
publish's own write, and the publish retried at the next position, storing its event twice. Here
the token of every successful transaction is remembered for 10 minutes with the request's items.

Only successes are remembered: a transaction that was cancelled or refused wrote nothing, so the
same request sent again is decided anew, as the first one was. The memory is the process's own;
after a restart of the local stack a token is new again (no client's resend spans one: a
function's botocore dies with the stack it runs in).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

TOKEN_WINDOW_SECONDS = 600.0
_MARK = "_tenantry_transaction_tokens"


class TransactionTokens:
    """Tokens of successful transactions, each with its request's items, for 10 minutes."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            _, (_, at) = next(iter(self._seen.items()))
            if now - at < TOKEN_WINDOW_SECONDS:
                return
            self._seen.popitem(last=False)

    def check(self, scope: tuple[str, str, str], items: str) -> bool:
        """True if ``scope``'s token already committed these items; raises if it committed others."""
        from moto.core.exceptions import JsonRESTError  # noqa: PLC0415 - moto is heavy to import

        with self._lock:
            self._forget_expired(self._clock())
            seen = self._seen.get(scope)
        if seen is None:
            return False
        if seen[0] != items:
            raise JsonRESTError(
                "IdempotentParameterMismatchException",
                "Request with the same client request token but different parameters was already used",
            )
        return True

    def remember(self, scope: tuple[str, str, str], items: str) -> None:
        with self._lock:
            self._seen[scope] = (items, self._clock())
            self._seen.move_to_end(scope)


TOKENS = TransactionTokens()


def install() -> None:
    """Patch moto's DynamoDB handler (once per process)."""
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415 - moto is heavy to import

    if getattr(DynamoHandler, _MARK, False):
        return
    original = DynamoHandler.transact_write_items

    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        scope = (str(self.current_account), str(self.region), str(token))
        items = json.dumps(self.body.get("TransactItems"), sort_keys=True, separators=(",", ":"))
        if TOKENS.check(scope, items):
            from moto.core.responses import ActionResult  # noqa: PLC0415

            return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
        result = original(self)
        TOKENS.remember(scope, items)
        return result

    setattr(DynamoHandler, "transact_write_items", transact_write_items)  # noqa: B010 - a patch
    setattr(DynamoHandler, _MARK, True)
