"""Chat's logic: a turn with the tenant's configuration, memory window and monthly token budget.

A turn costs at most three DynamoDB round trips: one BatchGetItem (tenant config, the month's
token count, the session's metadata), one Query for the memory window (existing sessions only),
and one TransactWriteItems after the model answered (the turn, the session's metadata and the
month's tokens together). Nothing is written before the model answers, so a failed call leaves
the session as it was.

A streamed turn (:func:`stream_turn`) does the same checks before its stream starts (their
errors are ordinary JSON answers), then sends the reply as the model writes it. The turn is stored
once the model finished, whether the client is still reading or not; when no turn can be stored
(the model failed or broke off, the deadline passed) the tokens the model reported are counted on
their own. Either way a request's tokens count once: its bill marker goes in with them.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from tenantry import deadline, llm, retry, streaming
from tenantry.errors import ApiError, BadRequest, Forbidden, NotFound, TooManyRequests, UpstreamUnavailable
from tenantry.models.chat import (
    ChatAnswer,
    ChatMessage,
    ChatRequest,
    ChatStreamDone,
    ChatStreamStart,
    SessionDeleted,
    SessionDetail,
    SessionInfo,
    SessionPage,
    TokenCount,
)
from tenantry.models.events import iso_utc
from tenantry.observability import logger
from tenantry.stores import conversations as store
from tenantry.stores import usage as usage_store
from tenantry.stores.pagination import decode_token, encode_token
from tenantry.tiers import CHAT, Tier, get_tier

DEFAULT_MAX_MESSAGES = 20
TITLE_CHARS = 80


# Kept back from the model's budget for the turn's write and its retries.
WRITE_RESERVE_SECONDS = 3.0
# The last moment a turn's write is still tried: the answer must leave before API Gateway's 504.
WRITE_FLOOR_SECONDS = 0.5
# Below this, calling the model cannot succeed: answer 504 without paying for a call.
MIN_MODEL_SECONDS = 1.0
# A streamed turn's model stops this long before the function's Timeout: the turn's write (or the
# tokens-only one) and the last event still fit.
STREAM_WRITE_RESERVE_SECONDS = 5.0
# While the model is silent, a comment goes out this often: API Gateway closes a stream idle for
# 30 s (edge-optimized endpoints; 5 minutes regional), and proxies sooner.
KEEP_ALIVE_SECONDS = 15.0


class TokenBudgetExceeded(TooManyRequests):
    code = "token_budget_exceeded"


class WriteContention(UpstreamUnavailable):
    code = "write_contention"


class TurnNotStored(ApiError):
    """The request's bill marker exists but no turn of the session holds the request: the answer
    cannot be acknowledged as stored (a broken invariant, never a 200 for a turn that is not)."""

    status = 500
    code = "turn_not_stored"


def _now() -> datetime:
    return datetime.now(UTC)


def _new_session_id() -> str:
    """Time-ordered, so ids sort by creation: ``s`` + ms since epoch (hex) + 10 random hex."""
    return f"s{int(time.time() * 1000):011x}{secrets.token_hex(5)}"


def seconds_until_next_month(moment: datetime) -> int:
    first_next = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, math.ceil((first_next - moment).total_seconds()))


def _session_info(session: store.ChatSession) -> SessionInfo:
    return SessionInfo(
        session_id=session.session_id,
        title=session.title,
        turns=session.turns,
        model=session.model,
        created_at=session.created_at,
        updated_at=session.updated_at,
    )


def _window(turns: list[store.ChatTurn], max_messages: int) -> list[llm.Message]:
    """The last ``max_messages`` messages of the earlier turns, starting with a user message."""
    messages: list[llm.Message] = []
    for turn in turns:
        messages.append(llm.Message("user", turn.user_message))
        messages.append(llm.Message("assistant", turn.reply))
    window = messages[-max_messages:] if max_messages > 0 else []
    if window and window[0].role == "assistant":
        window = window[1:]  # the Messages API wants a user message first
    return window


@dataclass(frozen=True, slots=True)
class _Conversation:
    """Where a turn goes: a new session, or the caller's existing one with its recent turns."""

    session_id: str
    previous_turns: int
    created_at: str
    title: str
    history: list[store.ChatTurn]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A turn checked and ready for the model: everything found before asking it."""

    tier: Tier
    config: store.ChatConfig
    conversation: _Conversation
    messages: list[llm.Message]
    moment: datetime


def _prepare(
    conversations: store.Conversations, tenant_id: str, tier_name: str, user_id: str, request: ChatRequest
) -> _Prepared:
    """The tier's feature, the tenant, the month's token budget and the session (404 when it is
    not the caller's), then the messages the model gets: every check a turn makes before asking."""
    tier = get_tier(tier_name)
    if not tier.has(CHAT):
        raise Forbidden(f"Tier {tier_name!r} does not include chat", code="feature_not_in_tier")
    moment = _now()
    period = usage_store.month_period(moment)
    state = conversations.read_turn_state(tenant_id, user_id, request.session_id, period)
    if state.config is None:
        raise NotFound("Tenant not found", field="tenant_id")
    config = state.config
    _check_token_budget(
        tier.llm_tokens_per_month if config.tokens_per_month is None else config.tokens_per_month,
        state.usage_month,
        moment,
    )
    max_messages = config.max_messages or DEFAULT_MAX_MESSAGES
    conversation = _conversation(
        conversations,
        tenant_id,
        user_id,
        request=request,
        session=state.session,
        max_messages=max_messages,
        moment=moment,
    )
    messages = [*_window(conversation.history, max_messages), llm.Message("user", request.message)]
    return _Prepared(tier, config, conversation, messages, moment)


def turn(
    tenant_id: str,
    tier_name: str,
    user_id: str,
    request: ChatRequest,
    *,
    request_id: str | None = None,
    conversations: store.Conversations = store.DYNAMODB,
) -> ChatAnswer:
    """One chat turn for ``user_id`` of ``tenant_id``: check the tier and the month's token budget,
    find the session, ask the model within the invocation's time, store the paid answer.

    A JSON answer must leave before API Gateway's integration timeout even on a route whose
    integration streams (and would wait longer): its budget is capped to it."""
    with deadline.capped(deadline.integration_timeout()):
        prepared = _prepare(conversations, tenant_id, tier_name, user_id, request)
        return _answer_json(conversations, prepared, tenant_id, user_id, request, request_id=request_id)


def _answer_json(
    conversations: store.Conversations,
    prepared: _Prepared,
    tenant_id: str,
    user_id: str,
    request: ChatRequest,
    *,
    request_id: str | None,
) -> ChatAnswer:
    config, conversation = prepared.config, prepared.conversation
    completion = _ask_model(
        config.system_prompt, config.model or prepared.tier.default_model, prepared.messages
    )
    turn_number = _store_turn(
        conversations,
        tenant_id=tenant_id,
        user_id=user_id,
        conversation=conversation,
        message=request.message,
        completion=completion,
        month=usage_store.month_period(prepared.moment),
        day=usage_store.day_period(prepared.moment),
        request_id=request_id,
    )
    logger.info(
        "chat turn",
        extra={
            "model": completion.model,
            "tokens_in": completion.input_tokens,
            "tokens_out": completion.output_tokens,
            "turn": turn_number,
        },
    )
    return ChatAnswer(
        response=completion.text,
        session_id=conversation.session_id,
        model=completion.model,
        tokens=TokenCount(input=completion.input_tokens, output=completion.output_tokens),
    )


def stream_turn(
    tenant_id: str,
    tier_name: str,
    user_id: str,
    request: ChatRequest,
    *,
    request_id: str,
    conversations: store.Conversations = store.DYNAMODB,
) -> streaming.Producer:
    """A streamed turn: every check, and the model's acceptance of the request, happen here (their
    errors are JSON answers); what this returns writes the events once the status is sent."""
    prepared = _prepare(conversations, tenant_id, tier_name, user_id, request)
    model_budget = deadline.remaining() - STREAM_WRITE_RESERVE_SECONDS
    if model_budget < MIN_MODEL_SECONDS:
        raise llm.ModelTimeout(
            "No time left to ask the model; nothing was stored", headers={"Retry-After": "1"}
        )
    config = prepared.config
    model_stream = llm.provider().open_stream(
        system=config.system_prompt,
        messages=prepared.messages,
        model=config.model or prepared.tier.default_model,
        max_tokens=prepared.tier.stream_max_tokens,
        budget_seconds=model_budget,
    )
    turn = _StreamedTurn(
        _conversations=conversations,
        _tenant_id=tenant_id,
        _user_id=user_id,
        _request=request,
        _request_id=request_id,
        _prepared=prepared,
        _model=model_stream,
    )
    return turn.produce


@dataclass(frozen=True, slots=True)
class _StreamedTurn:
    """One streamed turn after its checks: the events, then the turn stored or the tokens counted."""

    _conversations: store.Conversations
    _tenant_id: str
    _user_id: str
    _request: ChatRequest
    _request_id: str
    _prepared: _Prepared
    _model: llm.ModelStream

    def produce(self, stream: streaming.ResponseStream) -> None:
        events = streaming.EventStream(stream, self._request_id)
        conversation = self._prepared.conversation
        billed = False
        try:
            events.send(
                "start",
                ChatStreamStart(session_id=conversation.session_id, model=self._model.model).model_dump(),
            )
            within = deadline.remaining() - STREAM_WRITE_RESERVE_SECONDS
            for piece in self._model.pieces(within_seconds=within, idle_seconds=KEEP_ALIVE_SECONDS):
                if piece is None:
                    events.keep_alive()
                else:
                    events.send("delta", {"text": piece})
            result = self._model.result
            if events.client_gone:
                logger.info("the client left mid-stream; storing the finished turn")
            billed = self._store(result)
            done = ChatStreamDone(
                session_id=conversation.session_id,
                model=result.model,
                tokens=TokenCount(input=result.input_tokens, output=result.output_tokens),
                stop_reason=result.stop_reason,
            )
            events.send("done", done.model_dump())
        except ApiError as exc:
            events.fail(exc)
        except Exception:
            logger.exception("a streamed chat turn failed")
            events.fail(ApiError("The turn failed; nothing was stored", code="server_error"))
            raise
        finally:
            self._model.close()
            if not billed:
                self._bill_reported()

    def _store(self, result: llm.StreamResult) -> bool:
        """Store the finished turn with its tokens; True once they are counted (by the turn)."""
        completion = llm.Completion(result.text, result.model, result.input_tokens, result.output_tokens)
        turn_number = _store_turn(
            self._conversations,
            tenant_id=self._tenant_id,
            user_id=self._user_id,
            conversation=self._prepared.conversation,
            message=self._request.message,
            completion=completion,
            month=usage_store.month_period(self._prepared.moment),
            day=usage_store.day_period(self._prepared.moment),
            request_id=self._request_id,
        )
        logger.info(
            "chat turn streamed",
            extra={
                "model": result.model,
                "tokens_in": result.input_tokens,
                "tokens_out": result.output_tokens,
                "turn": turn_number,
                "stop_reason": result.stop_reason,
            },
        )
        return True

    def _bill_reported(self) -> None:
        """No turn holds this request's tokens: count what the model reported, once."""
        usage = self._model.usage
        if not usage.input_tokens and not usage.output_tokens:
            return
        tokens = usage_store.TurnTokens(
            tenant_id=self._tenant_id,
            request_id=self._request_id,
            month=usage_store.month_period(self._prepared.moment),
            day=usage_store.day_period(self._prepared.moment),
            model=self._model.model,
            tokens_in=usage.input_tokens,
            tokens_out=usage.output_tokens,
        )
        try:
            counted = usage_store.DYNAMODB.add_turn_tokens(tokens)
        except ClientError:
            logger.exception(
                "the tokens of a turn that was not stored could not be counted",
                extra={"tokens_in": usage.input_tokens, "tokens_out": usage.output_tokens},
            )
            return
        logger.info(
            "tokens of a turn that was not stored",
            extra={"tokens_in": usage.input_tokens, "tokens_out": usage.output_tokens, "counted": counted},
        )


def _check_token_budget(budget: int, usage_month: usage_store.PeriodCounters, moment: datetime) -> None:
    """The month's budget (the tier's, or the tenant's override) against the tokens used so far."""
    used = usage_month.get("tokens_in") + usage_month.get("tokens_out")
    if used >= budget:
        wait = seconds_until_next_month(moment)
        raise TokenBudgetExceeded(
            f"This month's LLM token budget ({budget}) is spent; it renews in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def _conversation(
    conversations: store.Conversations,
    tenant_id: str,
    user_id: str,
    *,
    request: ChatRequest,
    session: store.ChatSession | None,
    max_messages: int,
    moment: datetime,
) -> _Conversation:
    if request.session_id is None:
        title = request.message[:TITLE_CHARS]
        return _Conversation(_new_session_id(), 0, iso_utc(moment), title, [])
    if session is None:
        # Another user's or another tenant's session does not exist for this caller.
        raise NotFound("No such session", field="session_id")
    history = conversations.recent_turns(tenant_id, user_id, request.session_id, math.ceil(max_messages / 2))
    return _Conversation(request.session_id, session.turns, session.created_at, session.title, history)


def _ask_model(system_prompt: str | None, model: str, messages: list[llm.Message]) -> llm.Completion:
    # The model gets what is left of the invocation minus the time the write needs, so the turn
    # answers (504, nothing stored) before API Gateway's integration timeout cuts it off.
    model_budget = deadline.remaining() - WRITE_RESERVE_SECONDS
    if model_budget < MIN_MODEL_SECONDS:
        raise llm.ModelTimeout(
            "No time left to ask the model; nothing was stored", headers={"Retry-After": "1"}
        )
    return llm.provider().complete(
        system=system_prompt,
        messages=messages,
        model=model,
        budget_seconds=model_budget,
    )


def _store_turn(
    conversations: store.Conversations,
    *,
    tenant_id: str,
    user_id: str,
    conversation: _Conversation,
    message: str,
    completion: llm.Completion,
    month: str,
    day: str,
    request_id: str | None = None,
) -> int:
    """Write the answered turn; the turn's number. The answer is paid for, so a lost race never
    discards it: a conflicting or throttled write is sent again, and a turn another request stored
    first moves this one to the next number."""
    previous_turns = conversation.previous_turns
    # Numbers at which a write may have committed unseen: read back before the request is failed,
    # since a client resends a failed turn and its resend would store the answer twice.
    unseen: set[int] = set()
    attempt = 0
    while True:
        attempt += 1
        updated_at = iso_utc(_now())
        turn_number = previous_turns + 1
        session = store.ChatSession(
            tenant_id=tenant_id,
            user_id=user_id,
            session_id=conversation.session_id,
            title=conversation.title,
            turns=turn_number,
            model=completion.model,
            created_at=conversation.created_at,
            updated_at=updated_at,
        )
        answered = store.ChatTurn(
            number=turn_number,
            user_message=message,
            reply=completion.text,
            model=completion.model,
            tokens_in=completion.input_tokens,
            tokens_out=completion.output_tokens,
            created_at=updated_at,
        )
        try:
            conversations.write_turn(session, answered, month=month, day=day, request_id=request_id)
        except usage_store.AlreadyBilledError:
            # An earlier send of this very turn committed and its answer was lost: it is at this
            # number (a send after a cancellation keeps its number). Acknowledged only once read.
            if _holds_request(conversations, session, turn_number, request_id):
                logger.warning(
                    "chat turn was already stored by an earlier attempt", extra={"attempts": attempt}
                )
                return turn_number
            logger.error(
                "the request's bill marker exists but its turn is not stored",
                extra={"turn": turn_number, "attempts": attempt},
            )
            raise TurnNotStored("This turn could not be stored; nothing was saved") from None
        except store.ContendedError:
            # Throttled past botocore's resends, one of which may have committed.
            unseen.add(turn_number)
            if not retry.pause(attempt, reserve=WRITE_FLOOR_SECONDS):
                break
            continue
        except ClientError as exc:
            if not retry.outcome_unknown(exc):
                raise
            # Sent again with a new token: if the first committed, the resend meets its bill marker.
            unseen.add(turn_number)
            if not retry.pause(attempt, reserve=WRITE_FLOOR_SECONDS):
                break
            continue
        except store.SessionChangedError:
            # Another turn of this session was stored while the model answered: store this one
            # after it (its answer did not see that turn, as with any two messages sent at once).
            current = _session_after_race(conversations, tenant_id, user_id, conversation.session_id)
            if current is None:
                break
            previous_turns = current.turns
            if attempt > 1 and not retry.pause(attempt, reserve=WRITE_FLOOR_SECONDS):
                break
            continue
        if attempt > 1:
            logger.info("chat turn stored after retries", extra={"attempts": attempt})
        return turn_number
    stored_at = _stored_unseen(conversations, session, unseen, request_id)
    if stored_at is not None:
        return stored_at
    logger.error(
        "chat turn could not be stored in time; the model's answer is lost",
        extra={
            "tokens_in": completion.input_tokens,
            "tokens_out": completion.output_tokens,
            "attempts": attempt,
        },
    )
    raise WriteContention(
        "The session is too busy to store this turn; send it again", headers={"Retry-After": "1"}
    )


def _holds_request(
    conversations: store.Conversations, session: store.ChatSession, number: int, request_id: str | None
) -> bool:
    """Whether turn ``number`` of the session was stored by ``request_id`` (a throttled read is
    retried within the budget)."""
    if request_id is None:
        return False
    stored = retry.call(
        lambda: conversations.get_turn(session.tenant_id, session.user_id, session.session_id, number)
    )
    return stored is not None and stored.request_id == request_id


def _stored_unseen(
    conversations: store.Conversations, session: store.ChatSession, numbers: set[int], request_id: str | None
) -> int | None:
    """The number at which an attempt whose outcome was not seen stored this request's turn, if one
    did (read once the retries are spent, before the request is answered as failed)."""
    for number in sorted(numbers):
        if _holds_request(conversations, session, number, request_id):
            logger.warning("chat turn stored by an attempt whose answer was lost", extra={"turn": number})
            return number
    return None


def _session_after_race(
    conversations: store.Conversations, tenant_id: str, user_id: str, session_id: str
) -> store.ChatSession | None:
    """The session as it is now, read with the write's patience (a throttled read is retried
    within the budget, not allowed to cost a paid answer); None when the budget is spent."""
    attempt = 0
    while True:
        attempt += 1
        try:
            current = conversations.get_session(tenant_id, user_id, session_id)
        except ClientError as exc:
            if retry.is_lost_race(exc) and retry.pause(attempt, reserve=WRITE_FLOOR_SECONDS):
                continue
            if retry.is_lost_race(exc):
                return None
            raise
        if current is None:
            raise NotFound("The session was deleted while the model answered", field="session_id")
        return current


def _tenant_bound_token(token: str | None, tenant_id: str) -> dict[str, Any] | None:
    start = decode_token(token)
    if start is not None and start.get("tenant_id") != tenant_id:
        raise BadRequest("Invalid page token", code="invalid_token", field="next_token")
    return start


def list_sessions(
    tenant_id: str,
    user_id: str,
    limit: int,
    next_token: str | None,
    *,
    conversations: store.Conversations = store.DYNAMODB,
) -> SessionPage:
    sessions, last = conversations.list_sessions(
        tenant_id, user_id, limit, _tenant_bound_token(next_token, tenant_id)
    )
    return SessionPage(
        sessions=[_session_info(session) for session in sessions], next_token=encode_token(last)
    )


def read_session(
    tenant_id: str,
    user_id: str,
    session_id: str,
    limit: int,
    next_token: str | None,
    *,
    conversations: store.Conversations = store.DYNAMODB,
) -> SessionDetail:
    session = conversations.get_session(tenant_id, user_id, session_id)
    if session is None:
        raise NotFound("No such session", field="session_id")
    turns, last = conversations.session_turns(
        tenant_id, user_id, session_id, limit, _tenant_bound_token(next_token, tenant_id)
    )
    messages: list[ChatMessage] = []
    for stored in turns:
        messages.append(ChatMessage(role="user", content=stored.user_message, created_at=stored.created_at))
        messages.append(ChatMessage(role="assistant", content=stored.reply, created_at=stored.created_at))
    return SessionDetail(session=_session_info(session), messages=messages, next_token=encode_token(last))


def delete_session(
    tenant_id: str, user_id: str, session_id: str, *, conversations: store.Conversations = store.DYNAMODB
) -> SessionDeleted:
    if conversations.get_session(tenant_id, user_id, session_id) is None:
        raise NotFound("No such session", field="session_id")
    return SessionDeleted(
        session_id=session_id, items_deleted=conversations.delete_session(tenant_id, user_id, session_id)
    )
