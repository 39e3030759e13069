"""Tenant isolation at the store boundary: a store builds every key from the tenant id it is given,
so tenant B's id never reaches tenant A's items, whatever else B's call names (A's positions,
session ids, turn numbers, checkpoint names, incarnation, key hashes).

The DynamoDB stores run here with the function role's data access, which IAM does not confine to
a partition: only the store's own keys stand between the tenants (the IAM wall has its own tests,
tests/unit/test_isolation.py and test_tenant_data_role.py). On moto, every table is read raw
before and after B's calls, so "A's data is unchanged" is checked item by item, in DynamoDB's
typed form. The in-memory fakes get the same calls and must answer alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from tenantry import aws as clients
from tenantry.stores import conversations as conversation_store
from tenantry.stores import events as event_store
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store
from tenantry.stores import usage as usage_store
from tests.fakes.conversations import InMemoryConversations
from tests.fakes.events import InMemoryEvents
from tests.fakes.keys import InMemoryKeys
from tests.fakes.tenants import InMemoryTenants
from tests.fakes.usage import InMemoryUsage
from tests.unit.test_store_fakes import _answer as answer
from tests.unit.test_store_fakes import _key

A, B = "acme", "globex"
INCARNATION_A, INCARNATION_B = "inc-acme", "inc-globex"
NOW = "2026-03-02T10:00:00.000Z"
MONTH, DAY = "month#2026-03", "day#2026-03-02"
EXPIRES_AT = 1_800_000_000

type Snapshot = dict[str, dict[str, list[str]]]  # table → tenant_id attribute → its items, as JSON


def snapshot(tables: Mapping[str, str]) -> Snapshot:
    """Every item of every table, raw (DynamoDB's typed form), grouped by its tenant_id attribute:
    the partition key of the tenant tables, the owner's id on an ApiKeys item."""
    found: Snapshot = {}
    paginator = clients.dynamodb_client().get_paginator("scan")
    for logical_id, name in tables.items():
        groups: dict[str, list[str]] = {}
        for page in paginator.paginate(TableName=name, ConsistentRead=True):
            for item in page["Items"]:
                owner = item.get("tenant_id", {}).get("S", "")
                groups.setdefault(owner, []).append(json.dumps(item, sort_keys=True))
        found[logical_id] = {owner: sorted(items) for owner, items in groups.items()}
    return found


def without(found: Snapshot, *owners: str) -> Snapshot:
    return {
        table: {owner: items for owner, items in groups.items() if owner not in owners}
        for table, groups in found.items()
    }


def owned_by(found: Snapshot, owner: str) -> dict[str, int]:
    """How many items each table holds for ``owner``."""
    return {table: len(groups[owner]) for table, groups in found.items() if owner in groups}


def tenant(tenant_id: str, incarnation: str, **fields: Any) -> tenant_store.TenantRecord:
    return tenant_store.TenantRecord(
        tenant_id=tenant_id,
        name=tenant_id.title(),
        tier="pro",
        status=tenant_store.ACTIVE,
        created_at=NOW,
        updated_at=NOW,
        incarnation=incarnation,
        **fields,
    )


@dataclass(frozen=True, slots=True)
class Run:
    """One store's run: A's data read back before B's calls, B's answers, A's data after."""

    before: Any
    answers: list[Any]
    after: Any


def run(read_a: Callable[[], Any], calls: list[Callable[[], Any]]) -> Run:
    """A's data read, B's calls made in order (each answer recorded), A's data read again."""
    before = read_a()
    answers = [answer(call) for call in calls]
    return Run(before, answers, read_a())


def on_both[S](
    tables: Mapping[str, str], give_a: Callable[[S], None], as_b: Callable[[S], Run], dynamodb: S, fake: S
) -> tuple[Snapshot, Run, Run]:
    """A's data given to each store, the tables read raw, then B's calls on each."""
    give_a(dynamodb)
    give_a(fake)
    given = snapshot(tables)
    return given, as_b(dynamodb), as_b(fake)


def check_isolated(
    tables: Mapping[str, str],
    given: Snapshot,
    runs: tuple[Run, Run],
    *,
    also_written: tuple[str, ...] = (),
) -> Snapshot:
    """The checks every store shares; returns the tables' state after B's calls."""
    dynamodb, fake = runs
    found = snapshot(tables)
    # A's data reads back as it did, on both stores
    assert dynamodb.after == dynamodb.before and fake.after == fake.before
    # and the fake answered B as DynamoDB did, call by call
    assert len(dynamodb.answers) == len(fake.answers)
    for number, (from_dynamodb, from_fake) in enumerate(zip(dynamodb.answers, fake.answers, strict=True)):
        assert from_fake == from_dynamodb, f"call {number}"
    # And no item outside B's own changed in any table (A's byte for byte): B's writes landed under B
    assert without(found, B, *also_written) == without(given, B, *also_written)
    assert owned_by(given, A), "the scenario gave A no data to protect"
    return found


# ---------------------------------------------------------------------------------------- events


def stored(kind: str, owner: str, number: int) -> event_store.StoredEvent:
    data = json.dumps({"owner": owner, "n": number}, separators=(",", ":"))
    return event_store.StoredEvent(kind, data, NOW, NOW)


def events_of_a(store: event_store.EventStore) -> Any:
    """A's stream and checkpoint, every way the store reads them."""
    return (
        store.read_head(A),
        [store.get_event(A, position) for position in range(5)],
        store.read_events(A, 0, 100, None),
        store.read_events(A, 1, 100, "a"),
        store.get_checkpoint(A, "reader"),
    )


def give_a_events(store: event_store.EventStore) -> None:
    store.open_stream(A, INCARNATION_A, NOW)
    store.append(A, 0, [stored("a", A, 1), stored("b", A, 2), stored("a", A, 3)], NOW, INCARNATION_A)
    store.save_checkpoint(A, event_store.StoredCheckpoint("reader", 2, NOW))


def events_as_b(store: event_store.EventStore) -> Run:
    calls: list[Callable[[], Any]] = [
        # reads at A's positions, A's checkpoint name
        lambda: store.read_head(B),
        lambda: [store.get_event(B, position) for position in range(5)],
        lambda: store.read_events(B, 0, 100, None),
        lambda: store.read_events(B, 1, 100, "a"),
        lambda: store.get_checkpoint(B, "reader"),
        # writes: on A's HEAD as A's writer would (A's last, A's incarnation), or with none
        lambda: store.append(B, 3, [stored("a", B, 4)], NOW, INCARNATION_A),
        lambda: store.append(B, 0, [stored("a", B, 1)], NOW),
        lambda: store.close_stream(B),  # B has no HEAD: nothing closed, A's stays
        lambda: store.open_stream(B, INCARNATION_A, NOW),  # A's incarnation is not B's
        lambda: store.save_checkpoint(B, event_store.StoredCheckpoint("reader", 99, "later")),
        lambda: store.get_checkpoint(B, "reader"),
        # B's own stream, at the positions A's events hold
        lambda: store.open_stream(B, INCARNATION_B, NOW),
        lambda: store.append(B, 0, [stored("a", B, 1), stored("c", B, 2)], NOW, INCARNATION_B),
        lambda: store.append(B, 2, [stored("a", B, 3)], NOW, INCARNATION_A),  # A's incarnation
        lambda: store.read_head(B),
        lambda: store.read_events(B, 0, 100, None),
        lambda: store.read_events(B, 1, 100, "b"),  # only A has a "b"
        lambda: store.get_event(B, 3),  # A's third event's position
        lambda: store.close_stream(B),
    ]
    return run(lambda: events_of_a(store), calls)


def test_tenant_b_cannot_read_list_or_overwrite_tenant_as_events_through_the_store(
    aws: dict[str, str],
) -> None:
    # Given acme and globex, each with its own incarnation, in the Tenants table and in the fake
    fake = InMemoryEvents()
    for tenant_id, incarnation in ((A, INCARNATION_A), (B, INCARNATION_B)):
        tenant_store.DYNAMODB.create(tenant(tenant_id, incarnation))
        fake.set_tenant(tenant_id, incarnation=incarnation)
    # and acme's stream of three events and its checkpoint in each
    # When every EventStore call is made with globex's id at acme's positions, checkpoint name
    # and incarnation
    stores: tuple[event_store.EventStore, event_store.EventStore] = (event_store.DYNAMODB, fake)
    given, dynamodb, in_memory = on_both(aws, give_a_events, events_as_b, *stores)
    # Then globex read none of acme's data, and its writes landed in its own stream only
    answers = dynamodb.answers
    assert answers[0] is None and answers[1] == [None] * 5
    assert answers[2] == answers[3] == event_store.StreamPage((), None)
    assert answers[4] is None
    assert answers[5] == answers[6] == "HeadMissingError"
    assert answers[7] == 0 and answers[8] == "StreamClosedError"
    assert answers[10] == event_store.StoredCheckpoint("reader", 99, "later")
    assert answers[12] == [1, 2] and answers[13] == "StreamClosedError" and answers[14] == 2
    assert [(event.type, event.data) for event in answers[15].events] == [
        ("a", {"owner": B, "n": 1}),
        ("c", {"owner": B, "n": 2}),
    ]
    assert answers[16] == event_store.StreamPage((), None) and answers[17] is None
    assert answers[18] == 1
    # And acme's stream and checkpoint read back as they were, on both stores
    head, positions, page, _, checkpoint = dynamodb.before
    assert head == 3 and len(page.events) == 3 and checkpoint.position == 2
    assert [event is not None for event in positions] == [False, True, True, True, False]
    found = check_isolated(aws, given, (dynamodb, in_memory))
    # (globex's writes are its events and its checkpoint: its HEAD was closed)
    assert owned_by(found, B) == {"TenantsTable": 1, "EventsTable": 2, "ConsumersTable": 1}
    # (acme's: its tenant item, its HEAD and three events, its checkpoint)
    assert owned_by(found, A) == {"TenantsTable": 1, "EventsTable": 4, "ConsumersTable": 1}


# --------------------------------------------------------------------------------- conversations


def chat_session(tenant_id: str, session_id: str, turns: int, at: str) -> conversation_store.ChatSession:
    return conversation_store.ChatSession(
        tenant_id=tenant_id,
        user_id="alice",
        session_id=session_id,
        title=f"{tenant_id}'s {session_id}",
        turns=turns,
        model="echo-1",
        created_at=NOW,
        updated_at=at,
    )


def chat_turn(tenant_id: str, number: int, at: str) -> conversation_store.ChatTurn:
    return conversation_store.ChatTurn(
        number=number,
        user_message=f"{tenant_id} asks {number}",
        reply=f"{tenant_id} is told {number}",
        model="echo-1",
        tokens_in=10 * number,
        tokens_out=100 * number,
        created_at=at,
    )


def write_turns(store: conversation_store.Conversations, tenant_id: str, session_id: str, turns: int) -> None:
    for number in range(1, turns + 1):
        at = f"2026-03-02T10:{number:02d}:00Z"
        store.write_turn(
            chat_session(tenant_id, session_id, number, at),
            chat_turn(tenant_id, number, at),
            month=MONTH,
            day=DAY,
        )


def chats_of_a(store: conversation_store.Conversations, usage: usage_store.UsageReader) -> Any:
    """A's sessions, turns and token counters, every way the stores read them."""
    return (
        store.read_turn_state(A, "alice", "s-1", MONTH),
        store.get_session(A, "alice", "s-1"),
        store.get_session(A, "alice", "s-2"),
        store.recent_turns(A, "alice", "s-1", 10),
        store.list_sessions(A, "alice", 10, None),
        store.session_turns(A, "alice", "s-1", 10, None),
        usage.get_range(A, "day#", "month#~"),
    )


type ChatStores = tuple[conversation_store.Conversations, usage_store.UsageReader]


def give_a_chats(stores: ChatStores) -> None:
    write_turns(stores[0], A, "s-1", 3)
    write_turns(stores[0], A, "s-2", 1)


def conversations_as_b(stores: ChatStores) -> Run:
    store, usage = stores
    at = "2026-03-02T11:00:00Z"
    calls: list[Callable[[], Any]] = [
        # reads at A's user, session ids, turn numbers
        lambda: store.read_turn_state(B, "alice", "s-1", MONTH),
        lambda: store.get_session(B, "alice", "s-1"),
        lambda: store.recent_turns(B, "alice", "s-1", 10),
        lambda: store.list_sessions(B, "alice", 10, None),
        lambda: store.session_turns(B, "alice", "s-1", 10, None),
        lambda: store.delete_session(B, "alice", "s-1"),  # only the metadata's key is counted
        # writes: A's session continued as if it were B's, then B's own at A's ids and numbers
        lambda: store.write_turn(chat_session(B, "s-1", 4, at), chat_turn(B, 4, at), month=MONTH, day=DAY),
        lambda: store.write_turn(chat_session(B, "s-1", 1, at), chat_turn(B, 1, at), month=MONTH, day=DAY),
        lambda: store.write_turn(chat_session(B, "s-2", 1, at), chat_turn(B, 1, at), month=MONTH, day=DAY),
        lambda: store.get_session(B, "alice", "s-1"),
        lambda: store.session_turns(B, "alice", "s-1", 10, None),
        lambda: store.list_sessions(B, "alice", 10, None),
        lambda: store.read_turn_state(B, "alice", "s-2", MONTH).usage_month,
        lambda: store.delete_session(B, "alice", "s-1"),
        lambda: store.get_session(B, "alice", "s-1"),
    ]
    return run(lambda: chats_of_a(store, usage), calls)


def test_tenant_b_cannot_read_list_overwrite_or_delete_tenant_as_chat_sessions_through_the_store(
    aws: dict[str, str],
) -> None:
    # Given acme, with a system prompt of its own, and globex, with none
    secret = "acme's secret prompt"
    tenant_store.DYNAMODB.create(
        tenant(A, INCARNATION_A, config={"system_prompt": secret, "max_messages": 4})
    )
    tenant_store.DYNAMODB.create(tenant(B, INCARNATION_B))
    fake = InMemoryConversations()
    fake.add_tenant(A, conversation_store.ChatConfig(system_prompt=secret, max_messages=4))
    fake.add_tenant(B)
    # and acme's alice with sessions s-1 (3 turns) and s-2 (1 turn) in each
    in_dynamodb: ChatStores = (conversation_store.DYNAMODB, usage_store.DYNAMODB)
    # When every Conversations call is made with globex's id at her user id, session ids and turn
    # numbers
    given, dynamodb, in_memory = on_both(
        aws, give_a_chats, conversations_as_b, in_dynamodb, (fake, fake.usage)
    )
    # Then globex saw nothing of acme's: no prompt, no tokens, no session, no turn
    answers = dynamodb.answers
    assert answers[0] == conversation_store.TurnState(
        config=conversation_store.ChatConfig(),
        usage_month=usage_store.PeriodCounters(B, MONTH),
        session=None,
    )
    assert answers[1] is None and answers[2] == [] and answers[3] == answers[4] == ([], None)
    assert answers[5] == 1
    # And continuing acme's session under globex's id was refused; its own turns landed as its own
    assert answers[6] == "SessionChangedError" and answers[7] is None and answers[8] is None
    assert answers[9] == chat_session(B, "s-1", 1, "2026-03-02T11:00:00Z")
    assert answers[10] == ([chat_turn(B, 1, "2026-03-02T11:00:00Z")], None)
    assert [found.session_id for found in answers[11][0]] == ["s-2", "s-1"]
    assert all(found.tenant_id == B for found in answers[11][0])
    assert answers[12].counters == {
        "tokens_in": 20,
        "tokens_out": 200,
        "tokens_in:echo-1": 20,
        "tokens_out:echo-1": 200,
    }
    assert answers[13] == 2 and answers[14] is None
    # And acme's sessions, turns and tokens read back as they were, on both stores
    state, first, second, recent, _, turns, periods = dynamodb.before
    assert state.config.system_prompt == secret and first.turns == 3 and second.turns == 1
    assert [found.number for found in recent] == [1, 2, 3] and len(turns[0]) == 3
    assert [(found.period, found.get("tokens_in")) for found in periods] == [(DAY, 70), (MONTH, 70)]
    found = check_isolated(aws, given, (dynamodb, in_memory))
    # (globex keeps its s-2, one turn, and the tokens of its two turns)
    assert owned_by(found, B) == {"TenantsTable": 1, "ConversationsTable": 2, "UsageTable": 2}


# ----------------------------------------------------------------------------------------- usage


def usage_of_a(usage: usage_store.UsageReader) -> Any:
    return (
        usage.get_period(A, MONTH),
        usage.get_period(A, DAY),
        usage.get_periods([A], MONTH),
        usage.get_range(A, "day#", "month#~"),
    )


class Usage(usage_store.UsageReader, usage_store.UsageWriter, Protocol):
    """Both sides of the usage store, as DynamoDBUsage and InMemoryUsage are."""


def give_a_usage(usage: Usage) -> None:
    counted = {"requests": 5, "allowed": 4, "denied": 1, "route:GET /me": 5}
    usage.add_once(
        "acme-batch#0",
        [
            usage_store.CounterAdditions(A, MONTH, counted),
            usage_store.CounterAdditions(A, DAY, counted),
        ],
        EXPIRES_AT,
    )


def usage_as_b(usage: Usage) -> Run:
    calls: list[Callable[[], Any]] = [
        lambda: usage.get_period(B, MONTH),
        lambda: usage.get_period(B, DAY),
        lambda: usage.get_periods([B], MONTH),
        lambda: usage.get_range(B, "day#", "month#~"),
        # B's counters, at A's periods and counter names
        lambda: usage.add_once(
            "globex-batch#0",
            [
                usage_store.CounterAdditions(B, MONTH, {"requests": 1, "route:GET /me": 1}),
                usage_store.CounterAdditions(B, DAY, {"requests": 1, "route:GET /me": 1}),
            ],
            EXPIRES_AT,
        ),
        lambda: usage.get_period(B, MONTH),
        lambda: usage.get_periods([B], DAY),
        lambda: usage.get_range(B, "day#", "month#~"),
    ]
    return run(lambda: usage_of_a(usage), calls)


def test_tenant_b_cannot_read_or_add_to_tenant_as_usage_counters_through_the_store(
    aws: dict[str, str],
) -> None:
    # Given acme's counters for a day and its month, added once in the Usage table and in the fake
    fake: Usage = InMemoryUsage()
    # When every usage call is made with globex's id at acme's periods and counter names
    given, dynamodb, in_memory = on_both(aws, give_a_usage, usage_as_b, usage_store.DYNAMODB, fake)
    # Then globex read nothing of acme's counters, and its own landed as its own
    answers = dynamodb.answers
    assert answers[0] == usage_store.PeriodCounters(B, MONTH) and answers[1] == usage_store.PeriodCounters(
        B, DAY
    )
    assert answers[2] == {} and answers[3] == []
    assert answers[4] is True
    assert answers[5] == usage_store.PeriodCounters(B, MONTH, {"requests": 1, "route:GET /me": 1})
    assert list(answers[6]) == [B] and [found.period for found in answers[7]] == [DAY, MONTH]
    # And acme's counters read back as they were, on both stores
    month, day, periods, history = dynamodb.before
    assert month.counters == day.counters == {"requests": 5, "allowed": 4, "denied": 1, "route:GET /me": 5}
    assert list(periods) == [A] and len(history) == 2
    # (the write-once markers are metering's, under their own partition: acme's batch and globex's)
    found = check_isolated(aws, given, (dynamodb, in_memory), also_written=(usage_store.MARKER_PARTITION,))
    assert owned_by(found, usage_store.MARKER_PARTITION) == {"UsageTable": 2}
    assert owned_by(found, B) == {"UsageTable": 2}


# ------------------------------------------------------------------------------------------ keys


ACME_HASHES = ("a-active", "a-pending", "a-revoked")


def keys_of_a(store: key_store.KeyStore) -> Any:
    return (
        store.list_for_tenant(A, ACME_HASHES),
        [store.get(key_hash) for key_hash in ACME_HASHES],
    )


def give_a_keys(store: key_store.KeyStore) -> None:
    store.put(_key("a-active", A, "2026-03-01T00:00:01Z", incarnation=INCARNATION_A))
    store.put(_key("a-pending", A, "2026-03-01T00:00:02Z", expires_at=EXPIRES_AT))
    store.put(_key("a-revoked", A, "2026-03-01T00:00:03Z"))
    store.activate("a-active", edge_key_id="edge-a", status=key_store.ACTIVE)
    store.revoke("a-revoked", "2026-03-01T00:00:04Z")


def keys_as_b(store: key_store.KeyStore) -> Run:
    mine = _key("b-active", B, "2026-03-01T00:00:00Z", incarnation=INCARNATION_B)
    calls: list[Callable[[], Any]] = [
        lambda: store.list_for_tenant(B),
        # A's hashes handed in as if B had registered them: never listed as B's
        lambda: store.list_for_tenant(B, ACME_HASHES),
        # a key of B's at the hash of A's key: refused, A's item stays A's
        lambda: store.put(replace(mine, key_hash="a-active")),
        lambda: store.put(replace(mine, key_hash="a-pending", status=key_store.ACTIVE)),
        lambda: store.put(mine),
        lambda: store.activate("b-active", edge_key_id="edge-b", status=key_store.ACTIVE),
        lambda: store.list_for_tenant(B, (*ACME_HASHES, "b-active")),
        # A's very hash and key id under B: not "the same key sent again", refused too
        lambda: store.put(replace(mine, key_hash="a-active", key_id="key_a-active")),
    ]
    return run(lambda: keys_of_a(store), calls)


def test_tenant_b_cannot_list_or_overwrite_tenant_as_keys_through_the_store(aws: dict[str, str]) -> None:
    # Given acme's active, pending and revoked keys in the ApiKeys table and in the fake
    fake: key_store.KeyStore = InMemoryKeys()
    # When globex lists keys with acme's hashes registered as its own and puts its key at them
    given, dynamodb, in_memory = on_both(aws, give_a_keys, keys_as_b, key_store.DYNAMODB, fake)
    # Then globex lists none of acme's keys, and its puts at acme's hashes are refused
    answers = dynamodb.answers
    assert answers[0] == answers[1] == []
    assert answers[2] == answers[3] == "KeyExistsError"
    assert answers[4] is None and answers[5] is None
    assert [(found.key_hash, found.tenant_id, found.status) for found in answers[6]] == [
        ("b-active", B, key_store.ACTIVE)
    ]
    assert answers[7] == "KeyExistsError"
    # And acme's keys read back as they were (the index listing them, oldest first), on both stores
    listed, read = dynamodb.before
    assert [found.key_hash for found in listed] == list(ACME_HASHES) and listed == read
    assert [found.status for found in read] == [key_store.ACTIVE, key_store.PENDING, key_store.REVOKED]
    found = check_isolated(aws, given, (dynamodb, in_memory))
    assert owned_by(found, B) == {"ApiKeysTable": 1}


# --------------------------------------------------------------------------------------- tenants


def tenant_a_of(store: tenant_store.TenantStore) -> Any:
    return store.get(A)


def give_a_and_b_records(store: tenant_store.TenantStore) -> None:
    store.create(tenant(A, INCARNATION_A, config={"system_prompt": "acme's"}, onboarding=NOW))
    store.register_key(A, "a-active")
    store.finish_onboarding(A)
    store.create(tenant(B, INCARNATION_B, onboarding=NOW))


def tenants_as_b(store: tenant_store.TenantStore) -> Run:
    changes = tenant_store.TenantChanges(updated_at="later", name="Globex 2", config={"max_messages": 2})
    calls: list[Callable[[], Any]] = [
        lambda: store.get(B),
        lambda: store.update(B, changes),
        # A's key hash under B's id: lands in B's list only, and leaves it again
        lambda: store.register_key(B, "a-active"),
        lambda: store.get(B).key_hashes,  # type: ignore[union-attr]
        lambda: store.unregister_key(B, "a-active"),
        lambda: store.get(B).key_hashes,  # type: ignore[union-attr]
        lambda: store.finish_onboarding(B),
        lambda: store.delete_unfinished(B),  # finished: stays
        lambda: replace(store.mark_offboarding(B, EXPIRES_AT), updated_at=""),  # type: ignore[type-var]
        lambda: store.delete_offboarded(B, INCARNATION_A),  # A's incarnation deletes nothing
        lambda: store.delete_offboarded(B, INCARNATION_B),
        lambda: store.get(B),
        # A's key hash in B's count, and a usage identity for B: nothing of A's moves
        lambda: store.end_key(B, "a-active", EXPIRES_AT),
        lambda: store.end_key(B, "a-active"),
        lambda: store.record_usage_key(B, "usage-b", "tntusage-of-b").usage_key_id,
    ]
    return run(lambda: tenant_a_of(store), calls)


def test_tenant_b_cannot_change_or_delete_tenant_as_record_through_the_store(aws: dict[str, str]) -> None:
    # Given acme, onboarded with a key and a config, and globex still onboarding, in the Tenants
    # table and in the fake
    fake: tenant_store.TenantStore = InMemoryTenants()
    # When every change to a tenant record is made for globex with acme's key hash and incarnation
    given, dynamodb, in_memory = on_both(aws, give_a_and_b_records, tenants_as_b, tenant_store.DYNAMODB, fake)
    # Then each change reached globex's record only
    answers = dynamodb.answers
    assert answers[0].tenant_id == B and answers[0].config == {} and answers[0].key_hashes == frozenset()
    assert (answers[1].name, answers[1].config) == ("Globex 2", {"max_messages": 2})
    assert answers[3] == frozenset({"a-active"}) and answers[5] == frozenset()
    assert answers[8].status == tenant_store.OFFBOARDING
    assert (answers[9], answers[10], answers[11]) == (False, True, None)
    # And acme's record reads back as it was, on both stores
    assert dynamodb.before == tenant(
        A,
        INCARNATION_A,
        config={"system_prompt": "acme's"},
        key_hashes=frozenset({"a-active"}),
        live_keys={"a-active": 0},
    )
    found = check_isolated(aws, given, (dynamodb, in_memory))
    assert owned_by(found, B) == {}
