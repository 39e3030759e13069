"""The operator CLI: ``tenantry tenants …``, ``tenantry keys …``, ``tenantry usage``, ``tenantry stats``.

It talks HTTP to the admin API at ``TENANTRY_URL`` (default ``http://127.0.0.1:3000``, the local
stack) with the admin key in ``TENANTRY_ADMIN_KEY`` (locally, ``$TENANTRY_HOME/admin-key`` is
used when the variable is unset), so the same commands work against ``make dev`` and a deployed
stage (``https://<api>.execute-api.<region>.amazonaws.com/v1``). Output is a table, or the API's
JSON with ``--json``. Exit codes: 0 done, 1 the API refused (its message on stderr, with each
invalid field's own message, and for a 401 where the key came from), 2 usage or connection
problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tenantry_cli import admin as cli_admin
from tenantry_cli.http_client import UnreachableError, call

DEFAULT_URL = "http://127.0.0.1:3000"


class CliError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _admin_key(args: argparse.Namespace) -> tuple[str, str]:
    """The admin key and where it came from (named when the API refuses it)."""
    if args.admin_key:
        return str(args.admin_key), "--admin-key"
    if os.environ.get("TENANTRY_ADMIN_KEY"):
        return os.environ["TENANTRY_ADMIN_KEY"], "$TENANTRY_ADMIN_KEY"
    local_file = Path(os.environ.get("TENANTRY_HOME", ".tenantry")) / "admin-key"
    if local_file.exists():
        return local_file.read_text(encoding="utf-8").strip(), str(local_file)
    raise CliError("no admin key: set TENANTRY_ADMIN_KEY or pass --admin-key", 2)


def refusal(status: int, answer: Any, key_source: str, url: str) -> str:
    """The API's refusal as the operator needs it: its message, each field's own message, and
    for a 401 which key was refused."""
    if not isinstance(answer, dict):
        return f"{status}: {answer}"
    detail = answer.get("message") or answer.get("Message")
    lines = [f"{status}: {detail}" + (f" ({answer['field']})" if answer.get("field") else "")]
    for error in answer.get("errors") or []:
        if isinstance(error, dict):
            lines.append(f"  {error.get('field', '?')}: {error.get('message', '')}")
    if status == 401:
        lines[0] += f": the admin key from {key_source} was refused by {url}"
    if status == 403 and key_source:
        lines[0] += f" (the key from {key_source} is not an admin key, or is suspended)"
    return "\n".join(lines)


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    key, source = _admin_key(args)
    try:
        status, answer = call(args.url, method, path, key, body)
    except UnreachableError as exc:
        raise CliError(f"cannot reach the API: {exc}", 2) from exc
    if status >= 400:
        raise CliError(refusal(status, answer, source, args.url), 1)
    return answer


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as an aligned plain-text table with a header."""
    cells = [
        [str(row.get(column, "") if row.get(column) is not None else "-") for column in columns]
        for row in rows
    ]
    widths = [
        max([len(column), *(len(line[index]) for line in cells)]) for index, column in enumerate(columns)
    ]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def _all_pages(args: argparse.Namespace, path: str, items_key: str, **query: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        parameters = {name: value for name, value in query.items() if value}
        if token:
            parameters["next_token"] = token
        page = _request(args, "GET", f"{path}?{urllib.parse.urlencode(parameters)}")
        rows.extend(page[items_key])
        token = page.get("next_token")
        if not token:
            return rows


def _quoted(tenant_id: str) -> str:
    return urllib.parse.quote(tenant_id, safe="")


# ---------------------------------------------------------------------------------- commands
TENANT_COLUMNS = ("tenant_id", "name", "tier", "status", "created_at")


def _tenant(answer: dict[str, Any]) -> str:
    return table([answer], TENANT_COLUMNS)


def tenants_create(args: argparse.Namespace) -> tuple[Any, str]:
    body: dict[str, Any] = {"name": args.name, "tier": args.tier}
    if args.id:
        body["tenant_id"] = args.id
    answer = _request(args, "POST", "/tenants", body)
    return answer, f"{_tenant(answer['tenant'])}\n\nAPI key (shown once): {answer['api_key']}"


def tenants_list(args: argparse.Namespace) -> tuple[Any, str]:
    rows = _all_pages(
        args, "/tenants", "tenants", tier=args.tier or "", status=args.status or "", limit="100"
    )
    return {"tenants": rows}, table(rows, TENANT_COLUMNS)


def tenants_get(args: argparse.Namespace) -> tuple[Any, str]:
    answer = _request(args, "GET", f"/tenants/{_quoted(args.tenant_id)}")
    return answer, f"{_tenant(answer)}\n\n{limits_table(answer)}"


def tenants_set_tier(args: argparse.Namespace) -> tuple[Any, str]:
    answer = _request(args, "PATCH", f"/tenants/{_quoted(args.tenant_id)}", {"tier": args.tier})
    return answer, _tenant(answer)


def _set_status(args: argparse.Namespace, status: str) -> tuple[Any, str]:
    answer = _request(args, "PATCH", f"/tenants/{_quoted(args.tenant_id)}", {"status": status})
    return answer, _tenant(answer)


def tenants_suspend(args: argparse.Namespace) -> tuple[Any, str]:
    return _set_status(args, "suspended")


def tenants_resume(args: argparse.Namespace) -> tuple[Any, str]:
    return _set_status(args, "active")


def _confirm_offboarding(tenant_id: str) -> None:
    """An operator types the tenant id to offboard it (nothing of it survives); --yes skips this."""
    if not sys.stdin.isatty():
        raise CliError(f"offboarding {tenant_id} deletes all its data: pass --yes to confirm", 2)
    print(
        f"Offboarding {tenant_id} revokes its keys and deletes every item it has; this cannot be undone.",
        file=sys.stderr,
    )
    typed = input(f"Type the tenant id ({tenant_id}) to confirm: ").strip()
    if typed != tenant_id:
        raise CliError(f"not confirmed ({typed!r} is not {tenant_id!r}); nothing was deleted", 1)


def tenants_delete(args: argparse.Namespace) -> tuple[Any, str]:
    if not args.yes:
        _confirm_offboarding(args.tenant_id)
    if not args.force:
        # The API's offboarding is safe to repeat and answers 200 for any id; an operator who
        # mistyped one should hear so. --force finishes an interrupted offboarding.
        _request(args, "GET", f"/tenants/{_quoted(args.tenant_id)}")
    answer = _request(args, "DELETE", f"/tenants/{_quoted(args.tenant_id)}")
    counts = ", ".join(f"{table_name} {count}" for table_name, count in answer["items_deleted"].items())
    text = (
        f"offboarded {answer['tenant_id']}: {answer['keys_revoked']} keys revoked, "
        f"{answer['edge_keys_deleted']} API Gateway keys deleted; items deleted: {counts}"
    )
    if answer.get("status") == "purging":
        # 202: a large tenant; the final purge deletes the rest off the request path.
        text += (
            f"\nthe purge goes on in the background; `tenantry tenants delete {args.tenant_id} --force` "
            "says where it stands"
        )
    return answer, text


LIMIT_NAMES = ("requests_per_minute", "burst", "requests_per_month", "tokens_per_month")


def limits_table(answer: dict[str, Any]) -> str:
    """A tenant's limits in force and where each comes from (its tier, or an override)."""
    rows = [
        {"limit": name, "value": answer["limits"][name], "source": answer["limit_sources"][name]}
        for name in LIMIT_NAMES
    ]
    return table(rows, ("limit", "value", "source"))


def tenants_limits(args: argparse.Namespace) -> tuple[Any, str]:
    """Show a tenant's limits, or override some (a number) or return them to the tier ("tier")."""
    changes = {name: getattr(args, name) for name in LIMIT_NAMES if getattr(args, name) is not None}
    path = f"/tenants/{_quoted(args.tenant_id)}"
    if changes:
        body = {"limits": {name: None if value == "tier" else int(value) for name, value in changes.items()}}
        answer = _request(args, "PATCH", path, body)
    else:
        answer = _request(args, "GET", path)
    return answer, f"{answer['tenant_id']} ({answer['tier']})\n{limits_table(answer)}"


def _limit_value(text: str) -> str:
    if text == "tier" or (text.isdigit() and int(text) >= 0):
        return text
    raise argparse.ArgumentTypeError(f"expected a whole number or 'tier', got {text!r}")


def keys_create(args: argparse.Namespace) -> tuple[Any, str]:
    body: dict[str, Any] = {"rotate": args.rotate}
    if args.rotate:
        body["grace_seconds"] = args.grace_seconds
    if args.name:
        body["name"] = args.name
    if args.scope:
        body["scopes"] = sorted(set(args.scope))
    if args.expires_in_seconds is not None:
        body["expires_in_seconds"] = args.expires_in_seconds
    answer = _request(args, "POST", f"/tenants/{_quoted(args.tenant_id)}/keys", body)
    key = answer["key"]
    scopes = ", ".join(key.get("scopes") or ["every scope"])
    lines = [
        f"new key {key['key_id']} ({key.get('name') or 'no name'}; {scopes})",
        f"api key (shown once): {answer['api_key']}",
        f"expires: {key.get('expires_at') or 'never'}",
    ]
    if args.rotate:
        lines.append(f"older keys expire: {answer.get('older_keys_expire_at') or 'now'}")
    return answer, "\n".join(lines)


def keys_rotate(args: argparse.Namespace) -> tuple[Any, str]:
    answer = _request(
        args, "POST", f"/tenants/{_quoted(args.tenant_id)}/keys", {"grace_seconds": args.grace_seconds}
    )
    older = answer.get("older_keys_expire_at") or "now"
    return (
        answer,
        f"new key {answer['key']['key_id']} (shown once): {answer['api_key']}\nolder keys expire: {older}",
    )


KEY_COLUMNS = ("key_id", "name", "scopes", "status", "hint", "created_at", "expires_at")


def keys_list(args: argparse.Namespace) -> tuple[Any, str]:
    answer = _request(args, "GET", f"/tenants/{_quoted(args.tenant_id)}/keys")
    rows = [{**key, "scopes": " ".join(key.get("scopes") or ["*"])} for key in answer["keys"]]
    return answer, table(rows, KEY_COLUMNS)


def keys_revoke(args: argparse.Namespace) -> tuple[Any, str]:
    answer = _request(args, "DELETE", f"/tenants/{_quoted(args.tenant_id)}/keys/{_quoted(args.key_id)}")
    return answer, f"revoked {answer['key_id']} of {args.tenant_id}"


USAGE_COLUMNS = ("period", "requests", "allowed", "denied", "client_errors", "errors", "avg_latency_ms",
                 "p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "tokens_in", "tokens_out")  # fmt: skip


def period_label(period: str) -> str:
    """A counter's period as a date: ``day#2026-12-07`` is 2026-12-07, ``month#2026-12`` 2026-12."""
    return period.partition("#")[2] or period


def usage(args: argparse.Namespace) -> tuple[Any, str]:
    answer = _request(args, "GET", f"/tenants/{_quoted(args.tenant_id)}/usage?days={args.days}")
    rows = [
        {**row, "period": period_label(str(row.get("period", "")))}
        for row in [*(answer["days"] or [answer["today"]]), answer["month"]]
    ]
    cost = answer["estimated_cost"]
    text = (
        f"{answer['tenant_id']} ({answer['tier']})\n{table(rows, USAGE_COLUMNS)}\n\n"
        f"estimated cost this month: {cost['total']:.6f} {cost['currency']} "
        f"(API Gateway {cost['api_gateway']:.6f}, Lambda {cost['lambda_compute']:.6f}, "
        f"DynamoDB {cost['dynamodb']:.6f}, LLM {cost['llm']:.6f})"
    )
    return answer, text


STATS_COLUMNS = ("tenant_id", "tier", "status", "requests", "allowed", "denied", "avg_latency_ms",
                 "p99_latency_ms", "tokens_in", "tokens_out", "estimated_cost_usd")  # fmt: skip


def stats(args: argparse.Namespace) -> tuple[Any, str]:
    rows = _all_pages(args, "/stats", "tenants", limit="100")
    return {"tenants": rows}, table(rows, STATS_COLUMNS)


# ---------------------------------------------------------------------------------- wiring
def _run(command: Any) -> Any:
    def handler(args: argparse.Namespace) -> int:
        try:
            answer, text = command(args)
        except CliError as exc:
            print(f"tenantry: {exc}", file=sys.stderr)
            return exc.exit_code
        print(json.dumps(answer, indent=2) if args.json else text)
        return 0

    return handler


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--url",
        default=os.environ.get("TENANTRY_URL", DEFAULT_URL),
        help=f"the API's base URL (default: $TENANTRY_URL, else {DEFAULT_URL}, the local stack)",
    )
    parser.add_argument(
        "--admin-key",
        help="admin key (default: $TENANTRY_ADMIN_KEY, else the local stack's $TENANTRY_HOME/admin-key)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    return parser


def register(subcommands: Any) -> None:
    tenants = subcommands.add_parser("tenants", help="Onboard, list, suspend and offboard tenants")
    actions = tenants.add_subparsers(dest="action", required=True)
    create = _common(actions.add_parser("create", help="Onboard a tenant; prints its key once"))
    create.add_argument("--name", required=True)
    create.add_argument("--tier", required=True, help="basic, pro or enterprise")
    create.add_argument("--id", help="tenant id (default: derived from the name)")
    create.set_defaults(handler=_run(tenants_create))
    listing = _common(actions.add_parser("list", help="List tenants"))
    listing.add_argument("--tier")
    listing.add_argument("--status", choices=("active", "suspended"))
    listing.set_defaults(handler=_run(tenants_list))
    for name, command, description in (
        ("get", tenants_get, "Show one tenant"),
        ("suspend", tenants_suspend, "Suspend: every key is refused at once"),
        ("resume", tenants_resume, "Resume a suspended tenant"),
        ("delete", tenants_delete, "Offboard: revoke keys and purge every item"),
    ):
        parser = _common(actions.add_parser(name, help=description))
        parser.add_argument("tenant_id")
        parser.set_defaults(handler=_run(command))
        if name == "delete":
            parser.add_argument(
                "--force", action="store_true", help="offboard even if the tenant item is gone (a retry)"
            )
            parser.add_argument(
                "--yes", action="store_true", help="do not ask to type the tenant id (scripts, CI)"
            )
    set_tier = _common(actions.add_parser("set-tier", help="Move a tenant (and its keys) to another tier"))
    set_tier.add_argument("tenant_id")
    set_tier.add_argument("tier", help="basic, pro or enterprise")
    set_tier.set_defaults(handler=_run(tenants_set_tier))
    limits = _common(
        actions.add_parser(
            "limits",
            help="Show a tenant's limits and where each comes from; --<limit> N|tier overrides or clears one",
        )
    )
    limits.add_argument("tenant_id")
    for name in LIMIT_NAMES:
        limits.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_limit_value, metavar="N|tier")
    limits.set_defaults(handler=_run(tenants_limits))

    keys = subcommands.add_parser("keys", help="List, rotate or revoke a tenant's keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    rotate = _common(
        key_actions.add_parser("rotate", help="Issue a new key; older ones live for the grace period")
    )
    rotate.add_argument("tenant_id")
    rotate.add_argument("--grace-seconds", type=int, default=86_400)
    rotate.set_defaults(handler=_run(keys_rotate))
    create = _common(
        key_actions.add_parser(
            "create",
            help="Issue a key with a name, scopes and an expiry; rotates the others only with --rotate",
        )
    )
    create.add_argument("tenant_id")
    create.add_argument("--name", help="a label for humans")
    create.add_argument(
        "--scope",
        action="append",
        choices=("events:read", "events:write", "chat", "usage:read", "keys:write"),
        help="what the key may call (repeat for several; none: every scope)",
    )
    create.add_argument("--expires-in-seconds", type=int, help="lifetime of the new key (default: none)")
    create.add_argument(
        "--rotate", action="store_true", help="the older keys stop after --grace-seconds (default: they stay)"
    )
    create.add_argument("--grace-seconds", type=int, default=86_400, help="with --rotate")
    create.set_defaults(handler=_run(keys_create))
    listing_keys = _common(
        key_actions.add_parser("list", help="A tenant's keys (ids, status, hints; no secrets)")
    )
    listing_keys.add_argument("tenant_id")
    listing_keys.set_defaults(handler=_run(keys_list))
    revoke = _common(key_actions.add_parser("revoke", help="Revoke one key at once"))
    revoke.add_argument("tenant_id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_run(keys_revoke))
    cli_admin.register_sweep(key_actions)
    cli_admin.register_migrate(key_actions)

    usage_parser = _common(
        subcommands.add_parser("usage", help="A tenant's usage, limits and estimated cost")
    )
    usage_parser.add_argument("tenant_id")
    usage_parser.add_argument("--days", type=int, default=1, help="daily history length (1-31)")
    usage_parser.set_defaults(handler=_run(usage))

    stats_parser = _common(
        subcommands.add_parser("stats", help="Every tenant's status, requests, latency, tokens and cost")
    )
    stats_parser.set_defaults(handler=_run(stats))
