"""A turn's write meets its request's bill marker (moto in process, faults forced once): the turn is
answered as stored only when the stored turn is this one, at the number the answer reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local import faults
from tenantry import caches, chat, deadline, tenancy
from tenantry.models.chat import ChatAnswer, ChatRequest
from tenantry.models.tenants import CreateTenantRequest
from tenantry.stores import conversations
from tests.unit.conftest import answers_lost


@pytest.fixture
def acme(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Tenant acme (enterprise) and the offline echo model (no Anthropic key anywhere)."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY_PARAMETER", raising=False)
    caches.clear_all("tenantry.llm.")
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="enterprise", tenant_id="acme"))
    yield "acme"
    caches.clear_all("tenantry.llm.")


def say(message: str, session_id: str | None, request_id: str) -> ChatAnswer:
    return chat.turn(
        "acme",
        "enterprise",
        "alice",
        ChatRequest(message=message, session_id=session_id),
        request_id=request_id,
    )


def stored(session_id: str) -> list[tuple[int, str]]:
    turns, _ = conversations.DYNAMODB.session_turns("acme", "alice", session_id, 100, None)
    return [(turn.number, turn.user_message) for turn in turns]


def test_a_committed_turn_whose_answer_was_lost_is_answered_once_at_its_number(acme: str) -> None:
    # Given a session with one turn
    session_id = say("one", None, "request-1").session_id
    with faults.activate("") as injector:
        # and the next turn's transaction commits, but its answer is lost as a cancellation for a
        # conflict (botocore does not resend it; the turn sends a new transaction, new token)
        injector.fail_once("dynamodb", "TransactWriteItems", "TransactionConflict", applied=True)
        # When the turn is sent
        answer = say("two", session_id, "request-2")
    # Then the retry met its own bill marker, and the turn is answered as stored, exactly once
    assert injector.injected == {"dynamodb:TransactWriteItems:TransactionConflict": 1}
    assert answer.response
    assert stored(session_id) == [(1, "one"), (2, "two")]
    session = conversations.DYNAMODB.get_session("acme", "alice", session_id)
    assert session is not None and session.turns == 2


def test_a_bill_marker_of_another_turn_is_never_answered_as_this_turn_stored(acme: str) -> None:
    # Given a turn stored with its request's bill marker
    session_id = say("one", None, "request-1").session_id
    # When another turn arrives under the same request id (in-process threads sharing one
    # Powertools router read each other's event: the integration test's harness did this)
    # Then it is not answered 200 as stored: the paid answer is refused loudly, never lost quietly
    with pytest.raises(chat.TurnNotStored):
        say("two", session_id, "request-1")
    assert stored(session_id) == [(1, "one")]


def test_a_turn_committed_while_every_resend_of_botocore_failed_is_answered_once(acme: str) -> None:
    # Given a session with one turn
    session_id = say("one", None, "request-1").session_id
    with faults.activate("") as injector:
        # and the next turn's transaction commits, its answer lost, and botocore's three resends
        # (same token) answered 500 too: the write's outcome is unknown to the function
        answers_lost(injector, committed=True, sends=4)
        # When the turn is sent
        answer = say("two", session_id, "request-2")
    # Then the turn sent again met its own bill marker: answered as stored, stored once
    assert injector.injected == {"dynamodb:TransactWriteItems:InternalServerError": 4}
    assert answer.response
    assert stored(session_id) == [(1, "one"), (2, "two")]


def test_a_turn_committed_unseen_is_read_back_when_the_budget_runs_out(acme: str) -> None:
    # Given a session with one turn
    session_id = say("one", None, "request-1").session_id
    with faults.activate("") as injector, deadline.budget(None, cap_seconds=6.0):
        # and the next turn's transaction commits, then every send of it is answered 500 until the
        # request's time is spent (the turn cannot learn its outcome by writing)
        answers_lost(injector, committed=True, sends=1000)
        # When the turn is sent
        answer = say("two", session_id, "request-2")
    # Then the stored turn was read back: answered as stored (a failure would invite a resend
    # that stores the answer twice), stored once
    assert answer.response
    assert stored(session_id) == [(1, "one"), (2, "two")]


def test_a_turn_that_never_committed_fails_when_the_budget_runs_out_and_nothing_is_stored(acme: str) -> None:
    # Given a session with one turn
    session_id = say("one", None, "request-1").session_id
    with faults.activate("") as injector, deadline.budget(None, cap_seconds=6.0):
        # and every send of the next turn's transaction answered 500, none applied
        answers_lost(injector, committed=False, sends=1000)
        # When the turn is sent, Then it fails with "send it again" (nothing is stored at any
        # number it tried, read back to be sure)
        with pytest.raises(chat.WriteContention):
            say("two", session_id, "request-2")
    assert stored(session_id) == [(1, "one")]
