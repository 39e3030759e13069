"""Chat through the local gateway: the echo provider (no key locally), sessions per user, isolation."""

from __future__ import annotations

from tests.integration.conftest import LocalStack


def test_chat_turns_and_sessions_over_http(gateway: LocalStack) -> None:
    # Given a tenant and two of its users
    _, key = gateway.create_tenant("pro")
    _, other_key = gateway.create_tenant("pro")
    alice = {"X-User-ID": "alice"}
    # When alice chats twice in one session
    first = gateway.request("POST", "/chat", key=key, body={"message": "hello"}, headers=alice)
    session_id = first.json["session_id"]
    second = gateway.request(
        "POST", "/chat", key=key, body={"message": "again", "session_id": session_id}, headers=alice
    )
    # Then the offline echo provider answered, and the session holds both turns
    assert first.status == second.status == 200
    assert first.json["model"] == "echo-1"
    detail = gateway.request("GET", f"/sessions/{session_id}", key=key, headers=alice)
    assert [m["content"] for m in detail.json["messages"]] == ["hello", "echo: hello", "again", "echo: again"]
    # And neither bob nor another tenant's alice can see it
    assert (
        gateway.request("GET", f"/sessions/{session_id}", key=key, headers={"X-User-ID": "bob"}).status == 404
    )
    assert gateway.request("GET", f"/sessions/{session_id}", key=other_key, headers=alice).status == 404
    # And a missing X-User-ID is a 422 naming the header
    missing = gateway.request("POST", "/chat", key=key, body={"message": "hi"})
    assert missing.status == 422
    assert missing.json["errors"][0]["field"].lower() == "x-user-id"
