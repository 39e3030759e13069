"""Data access of chat: sessions and their turns in the Conversations table.

Keys, under partition key ``tenant_id``:

- a session's metadata at sort key ``<user_id>#<session_id>``; it carries ``activity``
  (``<user_id>#<updated_at>#<session_id>``), the sort key of the sparse local index
  ``by-activity`` that lists a user's sessions newest first;
- each turn (the user's message and the reply) at ``<user_id>#<session_id>#<turn, 6 digits>``.

User ids cannot contain ``#`` and session ids neither, so one user's prefix never matches another's.

The logic (tenantry.chat) sees :class:`ChatSession`, :class:`ChatTurn` and :class:`TurnState`
through the :class:`Conversations` interface: keys, item shapes and DynamoDB's Decimals stay in
this module. Every call goes through the resource layer (plain Python values), the transaction
through the resource's own client, with the request's data access (tenantry.aws): inside a tenant
request those are the tenant's scoped credentials.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from tenantry import aws, retry, settings
from tenantry.stores import usage as usage_store
from tenantry.stores import values

ACTIVITY_INDEX = "by-activity"


class SessionChangedError(Exception):
    """Another turn of the same session was written first."""


class ContendedError(Exception):
    """DynamoDB cancelled the turn's write for a conflict or throttling; nothing was written."""


@dataclass(frozen=True, slots=True)
class ChatSession:
    """A user's session: its metadata as of its latest turn (``turns`` of them so far)."""

    tenant_id: str
    user_id: str
    session_id: str
    created_at: str
    updated_at: str
    title: str
    turns: int
    model: str


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One turn of a session (its ``number``, from 1): the user's message and the model's reply,
    and, read back, the id of the request that stored it (None for a turn written without one:
    :meth:`Conversations.write_turn` takes it beside the turn, with the request's bill marker)."""

    number: int
    user_message: str
    reply: str
    model: str
    tokens_in: int
    tokens_out: int
    created_at: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatConfig:
    """The chat settings of a tenant's record; None or 0 where the tenant set nothing."""

    system_prompt: str | None = None
    max_messages: int = 0
    model: str | None = None
    # The operator's override of the tier's monthly LLM token budget (tenantry.limits); None: none.
    tokens_per_month: int | None = None


@dataclass(frozen=True, slots=True)
class TurnState:
    """Everything a turn needs before calling the model, read in one round trip: the tenant's
    chat settings (None: no such tenant), its month's usage, and the session (None: not found)."""

    config: ChatConfig | None
    usage_month: usage_store.PeriodCounters
    session: ChatSession | None


class Conversations(Protocol):
    """What chat's logic (tenantry.chat) asks of its store: :data:`DYNAMODB` in the functions, an
    in-memory fake (tests/fakes/conversations.py) where DynamoDB is not the point. A page's
    ``start_key`` is the previous page's last key, as the store answered it."""

    def read_turn_state(
        self, tenant_id: str, user_id: str, session_id: str | None, period: str
    ) -> TurnState: ...

    def recent_turns(self, tenant_id: str, user_id: str, session_id: str, count: int) -> list[ChatTurn]: ...

    def write_turn(
        self, session: ChatSession, turn: ChatTurn, *, month: str, day: str, request_id: str | None = None
    ) -> None: ...

    def get_session(self, tenant_id: str, user_id: str, session_id: str) -> ChatSession | None: ...

    def get_turn(self, tenant_id: str, user_id: str, session_id: str, number: int) -> ChatTurn | None: ...

    def list_sessions(
        self, tenant_id: str, user_id: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[ChatSession], dict[str, Any] | None]: ...

    def session_turns(
        self, tenant_id: str, user_id: str, session_id: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[ChatTurn], dict[str, Any] | None]: ...

    def delete_session(self, tenant_id: str, user_id: str, session_id: str) -> int: ...


def check_turn(session: ChatSession, turn: ChatTurn) -> None:
    """A turn is written with the session's metadata as that turn leaves it: anything else is a
    bug in the caller, refused before it reaches the table."""
    if turn.number < 1 or session.turns != turn.number:
        raise ValueError(f"turn {turn.number} written with a session of {session.turns} turns")


def _table_name() -> str:
    return settings.table_name(settings.CONVERSATIONS_TABLE)


def _session_key(user_id: str, session_id: str) -> str:
    return f"{user_id}#{session_id}"


def _turn_key(user_id: str, session_id: str, number: int) -> str:
    return f"{user_id}#{session_id}#{number:06d}"


def _session_item(session: ChatSession) -> dict[str, Any]:
    return {
        "tenant_id": session.tenant_id,
        "sk": _session_key(session.user_id, session.session_id),
        "user_id": session.user_id,
        "session_id": session.session_id,
        "title": session.title,
        "turns": session.turns,
        "model": session.model,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "activity": f"{session.user_id}#{session.updated_at}#{session.session_id}",
    }


def _session(item: Mapping[str, Any]) -> ChatSession:
    return ChatSession(
        tenant_id=str(item["tenant_id"]),
        user_id=str(item["user_id"]),
        session_id=str(item["session_id"]),
        title=str(item.get("title", "")),
        turns=values.as_int(item.get("turns")),
        model=str(item.get("model", "")),
        created_at=str(item["created_at"]),
        updated_at=str(item["updated_at"]),
    )


def _turn_item(session: ChatSession, turn: ChatTurn, request_id: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tenant_id": session.tenant_id,
        "sk": _turn_key(session.user_id, session.session_id, turn.number),
        "user_message": turn.user_message,
        "reply": turn.reply,
        "model": turn.model,
        "tokens_in": turn.tokens_in,
        "tokens_out": turn.tokens_out,
        "created_at": turn.created_at,
    }
    if request_id is not None:
        item["request_id"] = request_id
    return item


def _turn(item: Mapping[str, Any]) -> ChatTurn:
    return ChatTurn(
        number=int(str(item["sk"]).rsplit("#", 1)[1]),
        user_message=str(item["user_message"]),
        reply=str(item["reply"]),
        model=str(item.get("model", "")),
        tokens_in=values.as_int(item.get("tokens_in")),
        tokens_out=values.as_int(item.get("tokens_out")),
        created_at=str(item["created_at"]),
        request_id=None if item.get("request_id") is None else str(item["request_id"]),
    )


def _config(tenant: Mapping[str, Any]) -> ChatConfig:
    config: Mapping[str, Any] = tenant.get("config") or {}
    budget = (tenant.get("limits") or {}).get("tokens_per_month")
    return ChatConfig(
        system_prompt=str(config.get("system_prompt") or "") or None,
        max_messages=values.as_int(config.get("max_messages")),
        model=str(config.get("model") or "") or None,
        tokens_per_month=None if budget is None else values.as_int(budget),
    )


def _turns_of(tenant_id: str, user_id: str, session_id: str) -> Any:
    return Key("tenant_id").eq(tenant_id) & Key("sk").begins_with(_session_key(user_id, session_id) + "#")


def _page[T](
    query: dict[str, Any], start_key: Mapping[str, Any] | None, entity: Callable[[Mapping[str, Any]], T]
) -> tuple[list[T], dict[str, Any] | None]:
    """One page of ``query`` after ``start_key``: its items as entities, and its last key."""
    if start_key:
        query = {**query, "ExclusiveStartKey": dict(start_key)}
    answer = aws.data_table(_table_name()).query(**query)
    return [entity(item) for item in answer.get("Items", [])], answer.get("LastEvaluatedKey")


class DynamoDBConversations:
    """:class:`Conversations` over the Conversations table, with the request's data access."""

    def read_turn_state(self, tenant_id: str, user_id: str, session_id: str | None, period: str) -> TurnState:
        """The tenant's record, its month's usage and the session's metadata: one BatchGetItem."""
        tenants = settings.table_name(settings.TENANTS_TABLE)
        usage = usage_store.table_name()
        conversations = _table_name()
        requests: dict[str, Any] = {
            tenants: {"Keys": [{"tenant_id": tenant_id}], "ConsistentRead": True},
            usage: {"Keys": [{"tenant_id": tenant_id, "period": period}], "ConsistentRead": True},
        }
        if session_id is not None:
            requests[conversations] = {
                "Keys": [{"tenant_id": tenant_id, "sk": _session_key(user_id, session_id)}],
                "ConsistentRead": True,
            }
        found: dict[str, list[dict[str, Any]]] = {}
        while requests:
            answer = aws.data_resource().batch_get_item(RequestItems=requests)
            for table, items in answer.get("Responses", {}).items():
                found.setdefault(table, []).extend(items)
            requests = answer.get("UnprocessedKeys") or {}

        def first(table: str) -> dict[str, Any] | None:
            items = found.get(table)
            return items[0] if items else None

        tenant, month, session = first(tenants), first(usage), first(conversations)
        return TurnState(
            config=None if tenant is None else _config(tenant),
            usage_month=usage_store.period_counters(month)
            if month
            else usage_store.PeriodCounters(tenant_id, period),
            session=None if session is None else _session(session),
        )

    def recent_turns(self, tenant_id: str, user_id: str, session_id: str, count: int) -> list[ChatTurn]:
        """The last ``count`` turns of a session, oldest first."""
        answer = aws.data_table(_table_name()).query(
            KeyConditionExpression=_turns_of(tenant_id, user_id, session_id),
            ScanIndexForward=False,
            Limit=count,
            ConsistentRead=True,
        )
        return [_turn(item) for item in reversed(answer.get("Items", []))]

    def write_turn(
        self, session: ChatSession, turn: ChatTurn, *, month: str, day: str, request_id: str | None = None
    ) -> None:
        """The turn, the session's metadata as the turn leaves it and the tokens on the month (with
        per-model counters) and the day, together or not at all: :class:`SessionChangedError` when
        another turn got there first, :class:`ContendedError` when DynamoDB cancelled the write.

        With ``request_id``, the turn records it and the request's bill marker goes in too (its
        tokens count once, see ``usage_store.TurnTokens``): ``usage_store.AlreadyBilledError``
        when it exists (the caller checks which turn holds the request, :meth:`get_turn`). Each send
        carries its own ClientRequestToken, so botocore's resend of one whose answer was lost is a
        no-op, not a second turn."""
        check_turn(session, turn)
        table = _table_name()
        previous = turn.number - 1
        session_put: dict[str, Any] = {"TableName": table, "Item": _session_item(session)}
        if previous == 0:
            session_put["ConditionExpression"] = "attribute_not_exists(sk)"
        else:
            session_put["ConditionExpression"] = "turns = :previous"
            session_put["ExpressionAttributeValues"] = {":previous": previous}
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": table,
                    "Item": _turn_item(session, turn, request_id),
                    "ConditionExpression": "attribute_not_exists(sk)",
                }
            },
            {"Put": session_put},
        ]
        tokens = usage_store.TurnTokens(
            session.tenant_id, request_id or "", month, day, turn.model, turn.tokens_in, turn.tokens_out
        )
        billed = tokens.updates(int(time.time()))
        items.extend(billed if request_id is not None else billed[1:])
        try:
            aws.data_transact_write(items, token=uuid.uuid4().hex)
        except ClientError as exc:
            if retry.is_lost_race(exc):
                raise ContendedError from exc
            reasons = retry.cancellation_reasons(exc)
            if request_id is not None and len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
                raise usage_store.AlreadyBilledError from exc
            if "ConditionalCheckFailed" in reasons:
                raise SessionChangedError from exc
            raise

    def get_session(self, tenant_id: str, user_id: str, session_id: str) -> ChatSession | None:
        item = (
            aws.data_table(_table_name())
            .get_item(
                Key={"tenant_id": tenant_id, "sk": _session_key(user_id, session_id)}, ConsistentRead=True
            )
            .get("Item")
        )
        return None if item is None else _session(item)

    def get_turn(self, tenant_id: str, user_id: str, session_id: str, number: int) -> ChatTurn | None:
        item = (
            aws.data_table(_table_name())
            .get_item(
                Key={"tenant_id": tenant_id, "sk": _turn_key(user_id, session_id, number)},
                ConsistentRead=True,
            )
            .get("Item")
        )
        return None if item is None else _turn(item)

    def list_sessions(
        self, tenant_id: str, user_id: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[ChatSession], dict[str, Any] | None]:
        """The user's sessions, the most recently active first."""
        query: dict[str, Any] = {
            "IndexName": ACTIVITY_INDEX,
            "KeyConditionExpression": Key("tenant_id").eq(tenant_id)
            & Key("activity").begins_with(f"{user_id}#"),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        return _page(query, start_key, _session)

    def session_turns(
        self, tenant_id: str, user_id: str, session_id: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[ChatTurn], dict[str, Any] | None]:
        """The session's turns, oldest first."""
        query: dict[str, Any] = {
            "KeyConditionExpression": _turns_of(tenant_id, user_id, session_id),
            "Limit": limit,
            "ConsistentRead": True,
        }
        return _page(query, start_key, _turn)

    def delete_session(self, tenant_id: str, user_id: str, session_id: str) -> int:
        """Delete the session's turns, then its metadata; the number of items deleted (the
        metadata counts as one, found or not)."""
        table = aws.data_table(_table_name())
        keys: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            query: dict[str, Any] = {
                "KeyConditionExpression": _turns_of(tenant_id, user_id, session_id),
                "ProjectionExpression": "sk",
            }
            if start:
                query["ExclusiveStartKey"] = start
            answer = table.query(**query)
            keys.extend(str(item["sk"]) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
        keys.append(_session_key(user_id, session_id))  # last: a retried delete still finds the session
        with table.batch_writer() as batch:
            for sort_key in keys:
                batch.delete_item(Key={"tenant_id": tenant_id, "sk": sort_key})
        return len(keys)


DYNAMODB: Final = DynamoDBConversations()
