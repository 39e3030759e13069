"""``tenantry logs --stack`` against CloudWatch Logs (moto): the stack's log groups, one tenant."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import template
from tenantry_cli import logs as cli_logs
from tenantry_cli.main import main


@pytest.fixture
def logs() -> Any:
    with mock_aws():
        yield boto3.client("logs", region_name="us-east-1")


def _put(client: Any, group: str, *messages: dict[str, Any]) -> None:
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    client.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": now + index, "message": json.dumps(message)}
            for index, message in enumerate(messages)
        ],
    )


def test_the_log_groups_are_the_templates_named_after_the_stack() -> None:
    groups = cli_logs.stack_log_groups("prod")
    assert groups["ApiAccess"] == "/aws/apigateway/prod-access"
    assert groups["EventsFunction"] == "/aws/lambda/prod/events"
    assert len(groups) == len(template.resources_of_type("AWS::Logs::LogGroup"))
    assert all("prod" in name and "${" not in name for name in groups.values())


def test_one_tenants_lines_from_the_stacks_log_groups(
    logs: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the stack's access log and a function log with lines of two tenants
    _put(
        logs,
        "/aws/apigateway/prod-access",
        {"tenantId": "acme", "resourcePath": "/me", "requestTimeEpoch": "1"},
        {"tenantId": "globex", "resourcePath": "/me", "requestTimeEpoch": "2"},
    )
    _put(
        logs,
        "/aws/lambda/prod/events",
        {"level": "INFO", "message": "published", "tenant_id": "acme"},
        {"level": "INFO", "message": "published", "tenant_id": "globex", "note": "acme in the text"},
    )
    patterns: list[str] = []
    logs.meta.events.register(
        "before-parameter-build.logs.FilterLogEvents",
        lambda params, **_: patterns.append(params.get("filterPattern", "")),
    )
    monkeypatch.setattr(cli_logs, "logs_client", lambda region: logs)

    # When acme's lines are asked for
    assert main(["logs", "--stack", "prod", "--tenant", "acme", "--region", "us-east-1"]) == 0
    out = capsys.readouterr().out.splitlines()

    # Then CloudWatch is asked with the JSON filter on the structured field, and only acme's lines
    # come back (a line that merely mentions acme does not)
    assert patterns and all(p == '{ ($.tenant_id = "acme") || ($.tenantId = "acme") }' for p in patterns)
    assert [line.split()[0] for line in out] == ["ApiAccess", "EventsFunction"]
    assert all(cli_logs.tenant_of(line.split(None, 1)[1]) == "acme" for line in out)
