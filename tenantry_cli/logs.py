"""``tenantry logs [--tenant ID] [--follow]``: the functions' and the access log's lines, one tenant's
or all, from the local stack's files or, with ``--stack NAME``, from CloudWatch Logs.

Locally the lines are in ``$TENANTRY_HOME/access.log`` (the stage's access log) and
``$TENANTRY_HOME/logs/<LogicalId>.log`` (each function's stdout: Powertools JSON and EMF). On AWS
the log groups are the template's ``AWS::Logs::LogGroup`` resources, named after the stack.
A tenant's lines are the JSON lines whose structured ``tenant_id`` (function logs) or
``tenantId`` (access log) is that tenant: CloudWatch filters with the equivalent JSON filter
pattern, and the lines are checked again here, field by field, never by substring.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from local import template

ACCESS_LOG = "access.log"
LOGS_FOLDER = "logs"
TENANT_FIELDS = ("tenant_id", "tenantId")
FOLLOW_POLL_SECONDS = 0.5
AWS_FOLLOW_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Line:
    source: str
    text: str
    epoch_ms: int | None


def _json_object(text: str) -> dict[str, Any] | None:
    """The line as a JSON object, or None (plain text, or JSON that is not an object)."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def tenant_of(text: str) -> str | None:
    """The tenant a structured (JSON) line names, if any."""
    record = _json_object(text)
    if record is None:
        return None
    for name in TENANT_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and value not in ("", "-"):
            return value
    return None


def epoch_ms_of(text: str) -> int | None:
    """When a line was written: the access log's requestTimeEpoch, Powertools' timestamp, EMF's."""
    record = _json_object(text)
    if record is None:
        return None
    if str(record.get("requestTimeEpoch", "")).isdigit():
        return int(record["requestTimeEpoch"])
    stamp = record.get("timestamp")
    if isinstance(stamp, str):
        for form in ("%Y-%m-%d %H:%M:%S,%f%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                return int(datetime.strptime(stamp, form).timestamp() * 1000)
            except ValueError:
                continue
    aws = record.get("_aws")
    if isinstance(aws, dict) and isinstance(aws.get("Timestamp"), int):
        return int(aws["Timestamp"])
    return None


def wanted(text: str, tenant: str | None) -> bool:
    return tenant is None or tenant_of(text) == tenant


def render(line: Line) -> str:
    return f"{line.source:<20} {line.text}"


# ---------------------------------------------------------------------- the local stack's files
def local_files(home: Path) -> dict[str, Path]:
    """Source label → file: the access log and every function's log."""
    files = {"access": home / ACCESS_LOG}
    for path in sorted((home / LOGS_FOLDER).glob("*.log")):
        files[path.stem] = path
    return {label: path for label, path in files.items() if path.exists()}


def _merged(lines: list[Line]) -> list[Line]:
    """In time order, a line without a time staying right after the one before it in its file."""
    keyed: list[tuple[int, int, Line]] = []
    last: dict[str, int] = {}
    for order, line in enumerate(lines):
        stamp = line.epoch_ms if line.epoch_ms is not None else last.get(line.source, 0)
        last[line.source] = stamp
        keyed.append((stamp, order, line))
    return [line for _, _, line in sorted(keyed, key=lambda entry: (entry[0], entry[1]))]


def read_local(home: Path, tenant: str | None) -> tuple[list[Line], dict[Path, int]]:
    """Every wanted line now in the files, in time order, and where each file ends."""
    lines: list[Line] = []
    offsets: dict[Path, int] = {}
    for label, path in local_files(home).items():
        with path.open("rb") as raw:
            data = raw.read()
        complete = data[: data.rfind(b"\n") + 1]
        offsets[path] = len(complete)
        for text in complete.decode("utf-8", errors="replace").splitlines():
            if text and wanted(text, tenant):
                lines.append(Line(label, text, epoch_ms_of(text)))
    return _merged(lines), offsets


def follow_local(
    home: Path, tenant: str | None, out: IO[str], stop: threading.Event, offsets: dict[Path, int]
) -> None:
    """Print wanted lines as they are appended (files that appear later included) until ``stop``."""
    while not stop.wait(FOLLOW_POLL_SECONDS):
        fresh: list[Line] = []
        for label, path in local_files(home).items():
            start = offsets.get(path, 0)
            with path.open("rb") as raw:
                raw.seek(start)
                data = raw.read()
            complete = data[: data.rfind(b"\n") + 1]
            offsets[path] = start + len(complete)
            for text in complete.decode("utf-8", errors="replace").splitlines():
                if text and wanted(text, tenant):
                    fresh.append(Line(label, text, epoch_ms_of(text)))
        for line in _merged(fresh):
            out.write(render(line) + "\n")
        out.flush()


# ---------------------------------------------------------------------- CloudWatch Logs
def stack_log_groups(stack: str) -> dict[str, str]:
    """Source label → log group name of every log group the template gives stack ``stack``."""
    groups: dict[str, str] = {}
    for logical_id, resource in template.resources_of_type("AWS::Logs::LogGroup").items():
        name = resource.get("Properties", {}).get("LogGroupName")
        pattern = name.get("Fn::Sub") if isinstance(name, dict) else name
        if isinstance(pattern, str):
            label = logical_id.removesuffix("LogGroup")
            groups[label] = pattern.replace("${AWS::StackName}", stack)
    return groups


def filter_pattern(tenant: str | None) -> str | None:
    """CloudWatch's JSON filter pattern for a tenant's structured lines."""
    if tenant is None:
        return None
    quoted = json.dumps(tenant)
    return f"{{ ($.tenant_id = {quoted}) || ($.tenantId = {quoted}) }}"


def logs_client(region: str | None) -> Any:
    import boto3  # noqa: PLC0415 - only the AWS path needs it

    return boto3.client("logs", region_name=region) if region else boto3.client("logs")


def read_aws(
    client: Any, groups: dict[str, str], tenant: str | None, start_ms: int, seen: set[str]
) -> list[Line]:
    """Wanted events of every group since ``start_ms`` not in ``seen`` (which it extends)."""
    lines: list[Line] = []
    pattern = filter_pattern(tenant)
    for label, group in groups.items():
        arguments: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
        if pattern is not None:
            arguments["filterPattern"] = pattern
        try:
            pages = client.get_paginator("filter_log_events").paginate(**arguments)
            for page in pages:
                for event in page.get("events", []):
                    event_id = str(event.get("eventId", ""))
                    text = str(event.get("message", "")).rstrip("\n")
                    if event_id in seen or not wanted(text, tenant):
                        continue
                    seen.add(event_id)
                    lines.append(Line(label, text, int(event.get("timestamp", 0))))
        except client.exceptions.ResourceNotFoundException:
            continue  # a function that never ran has no log group yet
    return sorted(lines, key=lambda line: line.epoch_ms or 0)


# ---------------------------------------------------------------------- the command
def _print(lines: Iterable[Line], out: IO[str]) -> None:
    for line in lines:
        out.write(render(line) + "\n")
    out.flush()


def run_aws(args: argparse.Namespace, out: IO[str], stop: Callable[[], bool]) -> int:
    client = logs_client(args.region)
    groups = stack_log_groups(args.stack)
    seen: set[str] = set()
    start_ms = int((time.time() - args.since * 60) * 1000)
    lines = read_aws(client, groups, args.tenant, start_ms, seen)
    _print(lines, out)
    while args.follow and not stop():
        time.sleep(AWS_FOLLOW_POLL_SECONDS)
        # Late-delivered events can carry earlier timestamps: look back a minute, dedupe by id.
        fresh = read_aws(client, groups, args.tenant, max(start_ms, int(time.time() * 1000) - 60_000), seen)
        _print(fresh, out)
    return 0


def _logs(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        if args.stack:
            return run_aws(args, out, stop=lambda: False)
        home = Path(args.home)
        if not home.exists():
            print(
                f"tenantry logs: no local state in {home} (run make dev, or pass --stack NAME)",
                file=sys.stderr,
            )
            return 2
        lines, offsets = read_local(home, args.tenant)
        _print(lines, out)
        if args.follow:
            follow_local(home, args.tenant, out, threading.Event(), offsets)
    except KeyboardInterrupt:
        return 0
    return 0


def register(subcommands: Any) -> None:
    logs = subcommands.add_parser(
        "logs", help="Function and access-log lines (one tenant's with --tenant), local or --stack on AWS"
    )
    logs.add_argument("--tenant", help="only lines whose structured tenant_id / tenantId is this tenant")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "--home", default=os.environ.get("TENANTRY_HOME", ".tenantry"), help="local state folder"
    )
    logs.add_argument("--stack", help="read CloudWatch Logs of this deployed stack instead")
    logs.add_argument("--region", help="AWS region of --stack (default: your AWS configuration)")
    logs.add_argument("--since", type=int, default=60, help="with --stack: minutes back (default 60)")
    logs.set_defaults(handler=_logs)
