"""The operator CLI's own output (tenantry_cli/ops.py), against a stub of the admin API: help written
for operators, dates instead of storage keys, the stats columns, and offboarding confirmed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from tenantry_cli import ops
from tenantry_cli.main import main

PERIOD = {"requests": 3, "allowed": 3, "denied": 0, "tokens_in": 10, "tokens_out": 20}
USAGE = {
    "tenant_id": "acme",
    "tier": "pro",
    "today": {**PERIOD, "period": "day#2026-12-07"},
    "days": [{**PERIOD, "period": "day#2026-12-06"}, {**PERIOD, "period": "day#2026-12-07"}],
    "month": {**PERIOD, "period": "month#2026-12"},
    "estimated_cost": {
        "total": 0.01,
        "currency": "USD",
        "api_gateway": 0.0,
        "lambda_compute": 0.0,
        "dynamodb": 0.0,
        "llm": 0.01,
    },
}
STATS = {
    "tenants": [
        {
            **PERIOD,
            "tenant_id": "acme",
            "tier": "pro",
            "status": "suspended",
            "avg_latency_ms": 4.5,
            "p99_latency_ms": 9.0,
            "estimated_cost_usd": 0.0123,
        }
    ],
    "next_token": None,
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """The admin API, stubbed: every call made, answered from the fixtures above."""
    made: list[tuple[str, str]] = []
    answers = {"/tenants/acme/usage": USAGE, "/stats": STATS, "/tenants/acme": {"tenant_id": "acme"}}

    def call(url: str, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
        made.append((method, path.split("?", maxsplit=1)[0]))
        if method == "DELETE":
            return 200, {"tenant_id": "acme", "keys_revoked": 1, "edge_keys_deleted": 1, "items_deleted": {}}
        return 200, answers[path.split("?", maxsplit=1)[0]]

    monkeypatch.setattr(ops, "call", call)
    monkeypatch.setenv("TENANTRY_ADMIN_KEY", "tnt_admin_test")
    yield made


def test_the_top_level_help_tells_an_operator_what_it_is_for(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for expected in ("TENANTRY_URL", "TENANTRY_ADMIN_KEY", "TENANTRY_HOME", "examples:", "deployed stage"):
        assert expected in text
    with pytest.raises(SystemExit):
        main(["stats", "--help"])
    assert "$TENANTRY_URL" in " ".join(capsys.readouterr().out.split())


def test_usage_shows_dates_not_storage_keys(
    api: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "acme", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert "2026-12-06" in out and "2026-12-07" in out and "\n2026-12 " in out
    assert "day#" not in out and "month#" not in out


def test_stats_shows_status_tokens_and_cost(
    api: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    for column in ("STATUS", "TOKENS_IN", "TOKENS_OUT", "ESTIMATED_COST_USD"):
        assert column in header
    assert "suspended" in row and "0.0123" in row


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str, tty: bool) -> None:
    stream = io.StringIO(text)
    stream.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdin", stream)


def test_delete_asks_for_the_tenant_id_and_deletes_only_when_it_is_typed(
    api: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an operator at a terminal who types another id
    _stdin(monkeypatch, "acne\n", tty=True)
    assert main(["tenants", "delete", "acme"]) == 1
    # Then nothing was asked of the API, and the operator hears why
    assert api == [] and "nothing was deleted" in capsys.readouterr().err
    # When the id is typed right
    _stdin(monkeypatch, "acme\n", tty=True)
    assert main(["tenants", "delete", "acme"]) == 0
    # Then the tenant is offboarded
    assert ("DELETE", "/tenants/acme") in api


def test_delete_without_a_terminal_needs_yes(
    api: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, "", tty=False)
    assert main(["tenants", "delete", "acme"]) == 2
    assert api == [] and "--yes" in capsys.readouterr().err
    assert main(["tenants", "delete", "acme", "--yes"]) == 0
    assert ("DELETE", "/tenants/acme") in api
