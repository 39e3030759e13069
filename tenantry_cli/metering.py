"""``tenantry metering replay``: apply the access-log batches metering could not, exactly once.

A batch the metering function failed on (after Lambda's two retries) waits in the on-failure queue
(stack output ``MeteringFailureQueueUrl``) as Lambda's invocation record, the original CloudWatch
Logs event in ``requestPayload``. This command reads those messages with the operator's own AWS
credentials, applies each through the same code the function runs (``tenantry.metering.replay``)
and deletes a message only once it was applied. The batch's chunk markers make it exactly once:
chunks that committed before the failure are skipped, so a replay (or a second one) never counts
a request twice. A message that fails again stays in the queue (visible again after the queue's
visibility timeout) and the command exits 1.

Against ``make dev`` (no ``--queue-url``) it uses the local stack's queue and Usage table, in the
running stack's embedded AWS, or in the state folder's own if the stack is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local import embedded, template

RECEIVE_BATCH = 10
# Long polling: short polls may miss messages on a few SQS hosts; one second asks them all.
WAIT_SECONDS = 1


@contextmanager
def _local_target(home: Path) -> Iterator[tuple[str, str]]:
    """(queue URL, Usage table) of the local stack; its embedded AWS configured for this process."""
    from local.gateway.api import load_api  # noqa: PLC0415 - only the local path needs the template model
    from local.gateway.intrinsics import LocalNames  # noqa: PLC0415

    endpoint = embedded.running_endpoint(home)
    own: embedded.EmbeddedAws | None = None
    if endpoint is None:
        own = embedded.EmbeddedAws(home)
        own.start()
        endpoint = own.endpoint_url
    try:
        embedded.configure_process(endpoint)
        model = load_api([], names=LocalNames())
        subscriber = model.functions.get(model.access_log_subscriber or "")
        if subscriber is None or subscriber.on_failure_arn is None:
            raise SystemExit("template.yaml has no metering function with an on-failure queue")
        queue_name = subscriber.on_failure_arn.rsplit(":", 1)[-1]
        url = embedded.client_for("sqs", endpoint).get_queue_url(QueueName=queue_name)["QueueUrl"]
        yield str(url), subscriber.env.get("USAGE_TABLE", template.local_table_name("UsageTable"))
    finally:
        if own is not None:
            own.stop()


def replay_queue(
    sqs: Any, queue_url: str, apply: Callable[[str], dict[str, int]], *, limit: int | None = None
) -> dict[str, Any]:
    """Receive, apply and delete until the queue answers empty (or ``limit`` messages were seen).
    A message is deleted only after ``apply`` returned; one that raised stays for a later run."""
    replayed = chunks_applied = duplicate_chunks = 0
    failed: list[dict[str, str]] = []
    seen: set[str] = set()
    while limit is None or len(seen) < limit:
        wanted = RECEIVE_BATCH if limit is None else max(1, min(RECEIVE_BATCH, limit - len(seen)))
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=wanted, WaitTimeSeconds=WAIT_SECONDS
        )
        messages = [message for message in answer.get("Messages", []) if message["MessageId"] not in seen]
        if not messages:
            break
        for message in messages:
            seen.add(message["MessageId"])
            try:
                result = apply(message["Body"])
            except Exception as exc:  # noqa: BLE001 - reported; the message stays in the queue
                failed.append({"message_id": message["MessageId"], "error": f"{type(exc).__name__}: {exc}"})
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            replayed += 1
            chunks_applied += int(result.get("chunks_applied", 0))
            duplicate_chunks += int(result.get("duplicate_chunks", 0))
    return {
        "replayed": replayed,
        "chunks_applied": chunks_applied,
        "duplicate_chunks": duplicate_chunks,
        "failed": failed,
    }


def _apply_one() -> Callable[[str], dict[str, int]]:
    from tenantry import deadline, metering  # noqa: PLC0415 - after the env names the table

    def apply(body: str) -> dict[str, int]:
        # Each message gets what one invocation would: retries of lost races within a budget.
        with deadline.budget(None):
            return metering.replay(body)

    return apply


def _replay(args: argparse.Namespace) -> int:
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    if args.queue_url:
        if not args.table:
            print("--table is required with --queue-url (stack output UsageTableName)", file=sys.stderr)
            return 2
        if args.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
        os.environ["USAGE_TABLE"] = args.table
        import boto3  # noqa: PLC0415

        from tenantry import caches  # noqa: PLC0415 - after the env names the table

        caches.clear_all()
        result = replay_queue(boto3.client("sqs"), args.queue_url, _apply_one(), limit=args.max_messages)
    else:
        with _local_target(Path(args.home).resolve()) as (queue_url, table):
            os.environ["USAGE_TABLE"] = table
            from tenantry import caches  # noqa: PLC0415 - after the env names the table

            caches.clear_all()
            sqs = embedded.client_for("sqs", os.environ["AWS_ENDPOINT_URL"])
            result = replay_queue(sqs, queue_url, _apply_one(), limit=args.max_messages)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"replayed {result['replayed']} failed batch(es): {result['chunks_applied']} chunk(s) applied, "
            f"{result['duplicate_chunks']} already counted before"
        )
        for failure in result["failed"]:
            print(
                f"  still failing, left in the queue: {failure['message_id']}: {failure['error']}",
                file=sys.stderr,
            )
    return 1 if result["failed"] else 0


def register(subcommands: Any) -> None:
    metering = subcommands.add_parser("metering", help="Operate metering: replay failed access-log batches")
    actions = metering.add_subparsers(dest="action", required=True)
    replay = actions.add_parser(
        "replay", help="Apply the batches in metering's on-failure queue exactly once, then delete them"
    )
    replay.add_argument(
        "--queue-url", help="the stack output MeteringFailureQueueUrl (default: make dev's queue)"
    )
    replay.add_argument("--table", help="the stack output UsageTableName (with --queue-url)")
    replay.add_argument("--region", help="AWS region (default: your AWS configuration)")
    replay.add_argument("--endpoint-url", help="AWS endpoint for both services (with --queue-url)")
    replay.add_argument(
        "--home", default=os.environ.get("TENANTRY_HOME", ".tenantry"), help="make dev's state folder"
    )
    replay.add_argument("--max-messages", type=int, help="stop after this many messages (default: all)")
    replay.add_argument("--json", action="store_true", help="Print JSON")
    replay.set_defaults(handler=_replay)
