"""The conversations store's boundary: typed entities in and out, the same answers from the
DynamoDB implementation and the in-memory fake, and chat's logic over the fake where the point is
what the logic does with the store's answers (races a real table only shows under load)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from tenantry import caches, chat, deadline, llm, tenancy
from tenantry.errors import NotFound
from tenantry.models.chat import ChatRequest
from tenantry.models.events import iso_utc
from tenantry.models.tenants import CreateTenantRequest, TenantConfig
from tenantry.stores import conversations as store
from tenantry.stores import usage as usage_store
from tenantry.tiers import get_tier
from tests.fakes.conversations import InMemoryConversations

MONTH, DAY = "month#2026-03", "day#2026-03-02"


def session(tenant_id: str, user_id: str, session_id: str, turns: int, at: str) -> store.ChatSession:
    return store.ChatSession(
        tenant_id=tenant_id,
        user_id=user_id,
        session_id=session_id,
        title=f"{session_id} title",
        turns=turns,
        model="echo-1",
        created_at="2026-03-02T10:00:00Z",
        updated_at=at,
    )


def turn(number: int, at: str) -> store.ChatTurn:
    return store.ChatTurn(
        number=number,
        user_message=f"question {number}",
        reply=f"answer {number}",
        model="echo-1",
        tokens_in=10 + number,
        tokens_out=20 + number,
        created_at=at,
    )


def write(
    conversations: store.Conversations, tenant_id: str, user_id: str, session_id: str, turns: int
) -> None:
    """``turns`` turns into a session, one minute apart (the session's activity moves with each)."""
    for number in range(1, turns + 1):
        at = f"2026-03-02T10:{number:02d}:00Z"
        conversations.write_turn(
            session(tenant_id, user_id, session_id, number, at), turn(number, at), month=MONTH, day=DAY
        )


def all_pages(read: Any, limit: int) -> list[tuple[list[Any], bool]]:
    """Every page of a paged read: its items and whether a next key came with it."""
    pages: list[tuple[list[Any], bool]] = []
    start = None
    while True:
        items, start = read(limit, start)
        pages.append((items, start is not None))
        if start is None:
            return pages


def test_the_in_memory_conversations_answer_as_the_dynamodb_ones(aws: dict[str, str]) -> None:
    # Given the same tenants, sessions and turns written through the DynamoDB store and the fake:
    # acme's alice with three sessions (one of 5 turns), acme's bob and globex's alice with one each
    config = TenantConfig(max_messages=6, system_prompt="Be brief.")
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme", config=config))
    tenancy.create_tenant(CreateTenantRequest(name="Globex", tier="pro", tenant_id="globex"))
    fake = InMemoryConversations()
    fake.add_tenant("acme", store.ChatConfig(system_prompt="Be brief.", max_messages=6))
    fake.add_tenant("globex")
    conversations: list[store.Conversations] = [store.DYNAMODB, fake]
    for each in conversations:
        write(each, "acme", "alice", "s-one", 5)
        write(each, "acme", "alice", "s-two", 1)
        write(each, "acme", "alice", "s-three", 2)
        write(each, "acme", "bob", "s-one", 1)
        write(each, "globex", "alice", "s-one", 1)
    # When each is read every way chat's logic reads it
    answers: list[dict[str, Any]] = []
    for each in conversations:
        answers.append(
            {
                "state": each.read_turn_state("acme", "alice", "s-one", MONTH),
                "no session": each.read_turn_state("acme", "alice", None, MONTH),
                "no tenant": each.read_turn_state("initech", "alice", "s-one", MONTH),
                "no such session": each.read_turn_state("globex", "alice", "s-two", MONTH),
                "recent": each.recent_turns("acme", "alice", "s-one", 3),
                "session": each.get_session("acme", "alice", "s-one"),
                "other user's": each.get_session("acme", "bob", "s-two"),
                "sessions": all_pages(
                    lambda limit, start, e=each: e.list_sessions("acme", "alice", limit, start), 2
                ),
                "turns": all_pages(
                    lambda limit, start, e=each: e.session_turns("acme", "alice", "s-one", limit, start), 2
                ),
                "bob's sessions": each.list_sessions("acme", "bob", 10, None),
            }
        )
    dynamodb, in_memory = answers
    # Then both answer the same entities, in the same order, with the same pages
    assert dynamodb == in_memory
    # and those are what was written: plain ints, the newest session first, turns oldest first
    state = dynamodb["state"]
    assert state.config == store.ChatConfig(system_prompt="Be brief.", max_messages=6)
    assert state.usage_month.get("tokens_in") == sum(10 + n for n in (1, 2, 3, 4, 5, 1, 1, 2)) + 11
    assert state.usage_month.get("tokens_in:echo-1") == state.usage_month.get("tokens_in")
    assert state.session == session("acme", "alice", "s-one", 5, "2026-03-02T10:05:00Z")
    assert dynamodb["no session"].session is None
    assert dynamodb["no tenant"].config is None and dynamodb["no tenant"].usage_month.counters == {}
    assert dynamodb["no such session"].config == store.ChatConfig()
    assert dynamodb["no such session"].session is None
    assert [t.number for t in dynamodb["recent"]] == [3, 4, 5]
    assert dynamodb["recent"][0] == turn(3, "2026-03-02T10:03:00Z")
    assert dynamodb["other user's"] is None
    assert [[s.session_id for s in page] for page, _ in dynamodb["sessions"]] == [
        ["s-one", "s-three"],
        ["s-two"],
    ]
    assert [[t.number for t in page] for page, _ in dynamodb["turns"]] == [[1, 2], [3, 4], [5]]
    assert [s.user_id for s in dynamodb["bob's sessions"][0]] == ["bob"]
    # And a page's next key is the same key on both, so a page token works with either
    for each in conversations:
        _, next_key = each.session_turns("acme", "alice", "s-one", 2, None)
        assert next_key == {"tenant_id": "acme", "sk": "alice#s-one#000002"}


def test_both_refuse_a_turn_over_a_session_that_changed_and_delete_alike(aws: dict[str, str]) -> None:
    # Given a session of 2 turns in each
    fake = InMemoryConversations()
    for each in (store.DYNAMODB, fake):
        write(each, "acme", "alice", "s-one", 2)
        # When a turn is written as the 2nd again (its writer read the session at 1 turn), or as
        # the 1st of a session that exists
        for stale in (2, 1):
            at = "2026-03-02T11:00:00Z"
            # Then it is refused as a changed session, and nothing of it is stored
            with pytest.raises(store.SessionChangedError):
                each.write_turn(
                    session("acme", "alice", "s-one", stale, at), turn(stale, at), month=MONTH, day=DAY
                )
        assert [t.reply for t in each.session_turns("acme", "alice", "s-one", 10, None)[0]] == [
            "answer 1",
            "answer 2",
        ]
        # And a turn that does not match its session's count is a caller's bug, refused before the table
        with pytest.raises(ValueError, match="turn 4"):
            each.write_turn(session("acme", "alice", "s-one", 3, "x"), turn(4, "x"), month=MONTH, day=DAY)
        # And a deletion counts the turns and the metadata; the metadata counts even when absent
        assert each.delete_session("acme", "alice", "s-one") == 3
        assert each.get_session("acme", "alice", "s-one") is None
        assert each.delete_session("acme", "alice", "s-one") == 1


# ------------------------------------------------------------- chat's logic over the in-memory store


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The offline echo model (no key configured): no AWS at all in these tests. Within an
    invocation's budget, as in a function, so a turn that cannot be stored gives up in the end."""
    monkeypatch.delenv("ANTHROPIC_API_KEY_PARAMETER", raising=False)
    caches.clear_all("tenantry.llm.")
    with deadline.budget(None, cap_seconds=10):
        yield
    caches.clear_all("tenantry.llm.")


def test_a_turn_another_request_stored_first_moves_this_one_to_the_next_number(
    echo: None, fixed_clock: datetime
) -> None:
    # Given acme's alice with a session of one turn
    fake = InMemoryConversations()
    fake.add_tenant("acme")
    first = chat.turn("acme", "basic", "alice", ChatRequest(message="one"), conversations=fake)
    session_id = first.session_id

    # and another request of hers that stores turn 2 while the model answers this one
    def another_request_first(_: store.ChatSession, __: store.ChatTurn) -> None:
        fake.before_write = None
        current = fake.get_session("acme", "alice", session_id)
        assert current is not None
        at = iso_utc(fixed_clock)
        fake.write_turn(
            replace(current, turns=2, updated_at=at),
            turn(2, at),
            month=usage_store.month_period(fixed_clock),
            day=usage_store.day_period(fixed_clock),
        )

    fake.before_write = another_request_first
    # When the turn is stored
    answer = chat.turn(
        "acme", "basic", "alice", ChatRequest(message="two", session_id=session_id), conversations=fake
    )
    # Then the paid answer is kept as turn 3, after the other request's, and nothing was lost
    assert answer.response == "echo: two"
    stored = fake.session_turns("acme", "alice", session_id, 10, None)[0]
    assert [(t.number, t.user_message) for t in stored] == [(1, "one"), (2, "question 2"), (3, "two")]
    current = fake.get_session("acme", "alice", session_id)
    assert current is not None and current.turns == 3 and current.title == "one"
    # And the month counts each of the three turns' tokens once
    month = fake.usage.get_period("acme", usage_store.month_period(fixed_clock))
    assert month.get("tokens_in") == sum(t.tokens_in for t in stored)


def test_a_session_deleted_while_the_model_answered_is_404_and_nothing_is_stored(
    echo: None, fixed_clock: datetime
) -> None:
    # Given acme's alice with a session, which she deletes while the model answers her next message
    fake = InMemoryConversations()
    fake.add_tenant("acme")
    session_id = chat.turn(
        "acme", "basic", "alice", ChatRequest(message="one"), conversations=fake
    ).session_id
    tokens_before = fake.usage.get_period("acme", usage_store.month_period(fixed_clock))
    assert tokens_before.get("tokens_in") > 0

    def deleted_meanwhile(_: store.ChatSession, __: store.ChatTurn) -> None:
        fake.delete_session("acme", "alice", session_id)

    fake.before_write = deleted_meanwhile
    # When the turn is stored / Then it is 404 naming the session, and the session stays deleted
    with pytest.raises(NotFound) as missing:
        chat.turn(
            "acme", "basic", "alice", ChatRequest(message="two", session_id=session_id), conversations=fake
        )
    assert missing.value.field == "session_id"
    assert fake.get_session("acme", "alice", session_id) is None
    assert fake.session_turns("acme", "alice", session_id, 10, None) == ([], None)
    assert fake.usage.get_period("acme", usage_store.month_period(fixed_clock)) == tokens_before


def test_the_memory_window_and_the_tenants_settings_reach_the_model(
    echo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tenant with a system prompt and a 3-message window, and a session of 3 turns
    fake = InMemoryConversations()
    fake.add_tenant("acme", store.ChatConfig(system_prompt="Be brief.", max_messages=3))
    session_id = chat.turn("acme", "basic", "alice", ChatRequest(message="m1"), conversations=fake).session_id
    for message in ("m2", "m3"):
        chat.turn(
            "acme", "basic", "alice", ChatRequest(message=message, session_id=session_id), conversations=fake
        )
    asked: list[tuple[str | None, list[llm.Message], str]] = []

    class Recording(llm.EchoProvider):
        def complete(
            self, *, system: str | None, messages: list[llm.Message], model: str, budget_seconds: float
        ) -> llm.Completion:
            asked.append((system, messages, model))
            return super().complete(
                system=system, messages=messages, model=model, budget_seconds=budget_seconds
            )

    monkeypatch.setattr(llm, "provider", Recording)
    # When the 4th message is sent
    chat.turn("acme", "basic", "alice", ChatRequest(message="m4", session_id=session_id), conversations=fake)
    # Then the model got the prompt, the tier's default model, and the last window that starts with
    # a user message, then the new one
    ((system, messages, model),) = asked
    assert system == "Be brief."
    assert model == get_tier("basic").default_model
    assert [(m.role, m.content) for m in messages] == [
        ("user", "m3"),
        ("assistant", "echo: m3"),
        ("user", "m4"),
    ]
