"""An in-memory :class:`tenantry.stores.conversations.Conversations`, for tests of chat's logic
where DynamoDB is not the point (the DynamoDB one is tested against moto and the embedded server).

It keeps the DynamoDB implementation's rules: a turn is written with its session's metadata and
its tokens together, only over the session as the writer read it (else ``SessionChangedError``);
pages are in the same order, and a page's last key has the same shape, as the table's queries
(moto's: a last key only when more items follow). ``before_write`` lets a test act between the
read and the write of a turn, as a concurrent request would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from tenantry.stores.conversations import (
    ChatConfig,
    ChatSession,
    ChatTurn,
    SessionChangedError,
    TurnState,
    check_turn,
)
from tests.fakes.usage import InMemoryUsage

type SessionId = tuple[str, str, str]  # tenant, user, session


class InMemoryConversations:
    def __init__(self, usage: InMemoryUsage | None = None) -> None:
        self.usage = usage or InMemoryUsage()
        self.tenants: dict[str, ChatConfig] = {}
        self.sessions: dict[SessionId, ChatSession] = {}
        self.turns: dict[SessionId, dict[int, ChatTurn]] = {}
        # Called with the session and turn about to be written, before the write's conditions.
        self.before_write: Callable[[ChatSession, ChatTurn], None] | None = None

    def add_tenant(self, tenant_id: str, config: ChatConfig | None = None) -> None:
        self.tenants[tenant_id] = config or ChatConfig()

    def read_turn_state(self, tenant_id: str, user_id: str, session_id: str | None, period: str) -> TurnState:
        return TurnState(
            config=self.tenants.get(tenant_id),
            usage_month=self.usage.get_period(tenant_id, period),
            session=None if session_id is None else self.sessions.get((tenant_id, user_id, session_id)),
        )

    def recent_turns(self, tenant_id: str, user_id: str, session_id: str, count: int) -> list[ChatTurn]:
        return self._ordered((tenant_id, user_id, session_id))[-count:]

    def write_turn(
        self, session: ChatSession, turn: ChatTurn, *, month: str, day: str, request_id: str | None = None
    ) -> None:
        check_turn(session, turn)
        if self.before_write is not None:
            self.before_write(session, turn)
        key = (session.tenant_id, session.user_id, session.session_id)
        current = self.sessions.get(key)
        if (current.turns if current else 0) != turn.number - 1 or turn.number in self.turns.get(key, {}):
            raise SessionChangedError
        self.sessions[key] = session
        self.turns.setdefault(key, {})[turn.number] = replace(turn, request_id=request_id)
        tokens = {"tokens_in": turn.tokens_in, "tokens_out": turn.tokens_out}
        self.usage.add(
            session.tenant_id,
            month,
            **tokens,
            **{f"tokens_in:{turn.model}": turn.tokens_in, f"tokens_out:{turn.model}": turn.tokens_out},
        )
        self.usage.add(session.tenant_id, day, **tokens)

    def get_session(self, tenant_id: str, user_id: str, session_id: str) -> ChatSession | None:
        return self.sessions.get((tenant_id, user_id, session_id))

    def get_turn(self, tenant_id: str, user_id: str, session_id: str, number: int) -> ChatTurn | None:
        return self.turns.get((tenant_id, user_id, session_id), {}).get(number)

    def list_sessions(
        self, tenant_id: str, user_id: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[ChatSession], dict[str, Any] | None]:
        def activity(session: ChatSession) -> str:
            return f"{session.user_id}#{session.updated_at}#{session.session_id}"

        newest_first = sorted(
            (
                session
                for (tenant, user, _), session in self.sessions.items()
                if (tenant, user) == (tenant_id, user_id)
            ),
            key=activity,
            reverse=True,
        )
        if start_key:
            newest_first = [session for session in newest_first if activity(session) < start_key["activity"]]
        page = newest_first[:limit]
        if len(newest_first) <= limit:
            return page, None
        last = page[-1]
        return page, {
            "tenant_id": tenant_id,
            "sk": f"{user_id}#{last.session_id}",
            "activity": activity(last),
        }

    def session_turns(
        self, tenant_id: str, user_id: str, session_id: str, limit: int, start_key: Mapping[str, Any] | None
    ) -> tuple[list[ChatTurn], dict[str, Any] | None]:
        turns = self._ordered((tenant_id, user_id, session_id))
        if start_key:
            after = int(str(start_key["sk"]).rsplit("#", 1)[1])
            turns = [turn for turn in turns if turn.number > after]
        page = turns[:limit]
        if len(turns) <= limit:
            return page, None
        return page, {"tenant_id": tenant_id, "sk": f"{user_id}#{session_id}#{page[-1].number:06d}"}

    def delete_session(self, tenant_id: str, user_id: str, session_id: str) -> int:
        key = (tenant_id, user_id, session_id)
        self.sessions.pop(key, None)
        return len(self.turns.pop(key, {})) + 1  # the metadata counts, found or not

    def _ordered(self, key: SessionId) -> list[ChatTurn]:
        return [turn for _, turn in sorted(self.turns.get(key, {}).items())]
