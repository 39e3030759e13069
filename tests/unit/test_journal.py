"""The embedded AWS's write-ahead journal: records, torn tails, compaction, and a replay of every
kind of write the embedded services acknowledge."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local import journal
from local.embedded import EmbeddedAws
from local.template import local_queue_name, local_table_name


def _key_of(table_name: str, item: dict[str, Any]) -> dict[str, Any] | None:
    return {"pk": item["pk"]} if "pk" in item else None


# ------------------------------------------------------------------------------ the journal file


def test_records_come_back_in_order_after_the_snapshot_seq(tmp_path: Path) -> None:
    # Given a journal with three records
    log = journal.Journal(tmp_path, last_seq=0)
    for number in (1, 2, 3):
        log.wait_durable(log.append({"n": number}))
    log.close()

    # When it is read after seq 1
    records = list(journal.read_records(tmp_path, after_seq=1))

    # Then records 2 and 3 come back, in order
    assert [(record["seq"], record["n"]) for record in records] == [(2, 2), (3, 3)]


def test_a_torn_last_record_is_ignored_and_never_buried(tmp_path: Path) -> None:
    # Given a journal whose last line was cut short by a crash
    log = journal.Journal(tmp_path, last_seq=0)
    log.wait_durable(log.append({"n": 1}))
    log.close()
    (segment,) = journal.segments(tmp_path)
    with segment.open("ab") as raw:
        raw.write(b'{"seq":2,"n":')

    # When it is read, and a new journal then starts after the last intact record
    assert [record["n"] for record in journal.read_records(tmp_path, 0)] == [1]
    reopened = journal.Journal(tmp_path, last_seq=1)
    reopened.wait_durable(reopened.append({"n": 2}))
    reopened.close()

    # Then the torn record is gone and the new one reads back
    assert [record["n"] for record in journal.read_records(tmp_path, 0)] == [1, 2]


def test_rotation_then_discard_keeps_only_the_current_segment(tmp_path: Path) -> None:
    # Given records in a first segment
    log = journal.Journal(tmp_path, last_seq=0)
    log.append({"n": 1})
    log.append({"n": 2})

    # When a snapshot rotates the journal and, once durable, discards the older segments
    covered = log.rotate()
    log.discard_before_current()
    log.wait_durable(log.append({"n": 3}))
    log.close()

    # Then the snapshot covers seq 2, and only record 3 is left to replay
    assert covered == 2
    assert len(journal.segments(tmp_path)) == 1
    assert [record["n"] for record in journal.read_records(tmp_path, covered)] == [3]


def test_apply_puts_and_deletes_items_over_the_snapshot_in_order() -> None:
    # Given a snapshot with two items and records that change one, delete the other, add a third
    state: dict[str, Any] = {
        "journal_seq": 4,
        "dynamodb": {"t": [{"pk": {"S": "a"}, "v": {"N": "1"}}, {"pk": {"S": "b"}, "v": {"N": "1"}}]},
        "api_keys": [],
    }
    records = [
        {
            "seq": 5,
            "items": [{"table": "t", "key": {"pk": {"S": "a"}}, "item": {"pk": {"S": "a"}, "v": {"N": "2"}}}],
        },
        {"seq": 6, "items": [{"table": "t", "key": {"pk": {"S": "b"}}, "item": None}]},
        {"seq": 7, "items": [{"table": "t", "key": {"pk": {"S": "c"}}, "item": {"pk": {"S": "c"}}}]},
        {"seq": 8, "api_keys": [{"id": "k1"}]},
    ]

    # When they are applied
    merged, applied = journal.apply(state, iter(records), _key_of)

    # Then the result is the snapshot with each change, and the covered seq moved on
    assert applied == 4
    assert merged["journal_seq"] == 8
    assert merged["dynamodb"]["t"] == [{"pk": {"S": "a"}, "v": {"N": "2"}}, {"pk": {"S": "c"}}]
    assert merged["api_keys"] == [{"id": "k1"}]


# ------------------------------------------------------------------------------ the embedded AWS


@pytest.fixture
def first(tmp_path: Path) -> Iterator[EmbeddedAws]:
    server = EmbeddedAws(tmp_path / "home")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _crash_copy(server: EmbeddedAws, tmp_path: Path) -> Path:
    """The home folder as a SIGKILL would leave it now: every acknowledged write is on disk."""
    assert server.home is not None
    copy = tmp_path / "after-crash"
    shutil.copytree(server.home, copy)
    return copy


def _items(server: EmbeddedAws, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = server.client("dynamodb").scan(TableName=table, ConsistentRead=True)[
        "Items"
    ]
    return sorted(items, key=repr)


def test_every_kind_of_acknowledged_write_survives_a_crash(first: EmbeddedAws, tmp_path: Path) -> None:
    # Given writes of every kind, acknowledged by the embedded AWS, and no snapshot since
    dynamodb = first.client("dynamodb")
    apigateway = first.client("apigateway")
    tenants = local_table_name("TenantsTable")
    events = local_table_name("EventsTable")
    dynamodb.put_item(TableName=tenants, Item={"tenant_id": {"S": "a"}, "tier": {"S": "basic"}})
    dynamodb.put_item(TableName=tenants, Item={"tenant_id": {"S": "gone"}})
    dynamodb.update_item(
        TableName=tenants,
        Key={"tenant_id": {"S": "a"}},
        UpdateExpression="SET tier = :t, secret_bytes = :b",
        ExpressionAttributeValues={":t": {"S": "pro"}, ":b": {"B": b"\x00\x01"}},
    )
    dynamodb.delete_item(TableName=tenants, Key={"tenant_id": {"S": "gone"}})
    dynamodb.batch_write_item(
        RequestItems={tenants: [{"PutRequest": {"Item": {"tenant_id": {"S": f"b{n}"}}}} for n in range(3)]}
    )
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": events, "Item": {"tenant_id": {"S": "a"}, "position": {"N": str(n)}}}}
            for n in (1, 2)
        ]
    )
    plan_id = apigateway.get_usage_plans()["items"][0]["id"]
    key = apigateway.create_api_key(name="k", value="tnt_live_" + "x" * 40, enabled=True)
    apigateway.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
    apigateway.update_api_key(
        apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
    )
    expected = {table: _items(first, table) for table in (tenants, events)}
    home = _crash_copy(first, tmp_path)
    first.stop()

    # When a new embedded AWS starts on what the crash left
    with EmbeddedAws(home) as second:
        # Then every item and the API key (same id, value, plan, disabled) are back
        assert {table: _items(second, table) for table in (tenants, events)} == expected
        restored = second.client("apigateway").get_api_key(apiKey=key["id"], includeValue=True)
        assert (restored["value"], restored["enabled"]) == ("tnt_live_" + "x" * 40, False)
        plan_keys = second.client("apigateway").get_usage_plan_keys(usagePlanId=plan_id)["items"]
        assert [plan_key["id"] for plan_key in plan_keys] == [key["id"]]


@pytest.mark.parametrize("snapshot_first", [False, True])
def test_a_tenants_own_usage_plan_and_its_key_survive_a_crash_and_a_snapshot(
    first: EmbeddedAws, tmp_path: Path, snapshot_first: bool
) -> None:
    # Given a usage plan made at run time (a tenant's own, for its limit overrides, its limits
    # patched since) holding a tenant's usage key
    apigateway = first.client("apigateway")
    plan = apigateway.create_usage_plan(
        name="tenantry-local-tenant-acme",
        throttle={"rateLimit": 0.5, "burstLimit": 3},
        quota={"limit": 100, "period": "MONTH"},
        tags={"tenant_id": "acme"},
    )["id"]
    apigateway.update_usage_plan(
        usagePlanId=plan, patchOperations=[{"op": "replace", "path": "/throttle/rateLimit", "value": "2.5"}]
    )
    key = apigateway.create_api_key(name="usage-acme", value="tntusage" + "u" * 40, enabled=True)["id"]
    apigateway.create_usage_plan_key(usagePlanId=plan, keyId=key, keyType="API_KEY")
    if snapshot_first:
        first.snapshot()
    home = _crash_copy(first, tmp_path)
    first.stop()

    # When a new embedded AWS starts on what the crash left
    with EmbeddedAws(home) as second:
        restored = second.client("apigateway").get_usage_plan(usagePlanId=plan)
        plan_keys = second.client("apigateway").get_usage_plan_keys(usagePlanId=plan)["items"]
    # Then the plan is back under its id, with its limits and tags, and the key in it
    assert restored["name"] == "tenantry-local-tenant-acme"
    assert restored["throttle"] == {"rateLimit": 2.5, "burstLimit": 3}
    assert restored["quota"]["limit"] == 100 and restored["tags"] == {"tenant_id": "acme"}
    assert [plan_key["id"] for plan_key in plan_keys] == [key]


def test_a_snapshot_compacts_the_journal_and_a_restart_reads_the_same_state(
    first: EmbeddedAws, tmp_path: Path
) -> None:
    # Given acknowledged writes in the journal
    tenants = local_table_name("TenantsTable")
    dynamodb = first.client("dynamodb")
    for number in range(5):
        dynamodb.put_item(TableName=tenants, Item={"tenant_id": {"S": f"t{number}"}})
    assert first.home is not None
    assert any(segment.stat().st_size for segment in journal.segments(first.home))

    # When a snapshot is taken, one more write follows, and the process crashes
    first.snapshot()
    (segment,) = journal.segments(first.home)
    assert segment.stat().st_size == 0
    dynamodb.delete_item(TableName=tenants, Key={"tenant_id": {"S": "t0"}})
    home = _crash_copy(first, tmp_path)
    first.stop()

    # Then a restart has the snapshot with the later write applied
    with EmbeddedAws(home) as second:
        names = [item["tenant_id"]["S"] for item in _items(second, tenants)]
    assert sorted(names) == ["t1", "t2", "t3", "t4"]


def test_queued_messages_survive_a_crash_and_a_deleted_one_stays_deleted(
    first: EmbeddedAws, tmp_path: Path
) -> None:
    # Given the template's metering failure queue with three acknowledged messages, one deleted
    sqs = first.client("sqs")
    url = sqs.get_queue_url(QueueName=local_queue_name("MeteringFailureQueue"))["QueueUrl"]
    for body in ("one", "two", "three"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    (two,) = [message for message in received if message["Body"] == "two"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=two["ReceiptHandle"])
    home = _crash_copy(first, tmp_path)
    first.stop()

    # When a new embedded AWS starts on what the crash left (the journal, no snapshot since)
    with EmbeddedAws(home) as second:
        second_sqs = second.client("sqs")
        second_url = second_sqs.get_queue_url(QueueName=local_queue_name("MeteringFailureQueue"))["QueueUrl"]
        bodies = [
            message["Body"]
            for message in second_sqs.receive_message(QueueUrl=second_url, MaxNumberOfMessages=10)["Messages"]
        ]
        # And again after a clean stop (the snapshot holds them)
        second.snapshot()
    # Then the two undeleted messages are back, visible at once (a restart ends every lease)
    assert sorted(bodies) == ["one", "three"]
    with EmbeddedAws(home) as third:
        third_sqs = third.client("sqs")
        third_url = third_sqs.get_queue_url(QueueName=local_queue_name("MeteringFailureQueue"))["QueueUrl"]
        again = third_sqs.receive_message(QueueUrl=third_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(message["Body"] for message in again) == ["one", "three"]


def test_only_changes_to_what_a_snapshot_keeps_take_one(
    first: EmbeddedAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given the embedded AWS, counting the snapshots taken before an answer
    taken: list[str] = []
    original = first.snapshot

    def counted() -> Path | None:
        taken.append("snapshot")
        return original()

    monkeypatch.setattr(first, "snapshot", counted)
    # When a tenant's credentials are minted (STS keeps nothing a restart restores)
    first.client("sts").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/tenantry-local-tenant-data",
        RoleSessionName="acme",
        Tags=[{"Key": "tenant_id", "Value": "acme"}],
    )
    # Then no snapshot copies the whole state for it
    assert taken == []
    # But a change to a table's settings (not an item: the journal has no record for it) takes one
    first.client("dynamodb").update_time_to_live(
        TableName=local_table_name("TenantsTable"),
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    assert taken == ["snapshot"]
