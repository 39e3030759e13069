"""``tenantry admin-key create``: bootstrap an admin key with the operator's own AWS credentials.

The key's SHA-256 goes into the ApiKeys table (the stack output ``ApiKeysTableName``); the key
itself is printed once and stored nowhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _use_stack(args: argparse.Namespace, endpoint_variable: str, **env: str) -> None:
    """Point this process at the stack the arguments name, before the layer makes any client."""
    os.environ.update(API_KEYS_TABLE=args.table, **env)
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    if args.endpoint_url:
        os.environ[endpoint_variable] = args.endpoint_url
    from tenantry import caches  # noqa: PLC0415 - after the env is set

    caches.clear_all()


def _create(args: argparse.Namespace) -> int:
    _use_stack(args, "AWS_ENDPOINT_URL_DYNAMODB")
    from tenantry import tenancy  # noqa: PLC0415 - after the env is set

    expires = None if args.expires_in_days is None else args.expires_in_days * 86_400
    raw_key, info = tenancy.create_admin_key(expires)
    if args.json:
        print(json.dumps({"api_key": raw_key, "key": info.model_dump()}))
    else:
        print(f"Admin key (shown once, store it now): {raw_key}")
        print(f"key_id: {info.key_id}  expires_at: {info.expires_at or 'never'}", file=sys.stderr)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    _use_stack(args, "AWS_ENDPOINT_URL", USAGE_PLAN_NAME_PREFIX=args.stack, TENANTS_TABLE=args.tenants_table)
    from tenantry import keysweep  # noqa: PLC0415 - after the env is set

    orphans = keysweep.find_orphans(args.stack, min_age_seconds=int(args.min_age_minutes * 60))
    deleted = keysweep.sweep(orphans) if args.delete else 0
    if args.json:
        print(json.dumps({"orphans": [vars_of(orphan) for orphan in orphans], "deleted": deleted}))
        return 0
    for orphan in orphans:
        print(
            f"{orphan.kind}  {orphan.edge_key_id}  {orphan.name}  tenant={orphan.tenant_id}  {orphan.reason}"
        )
    action = f"deleted {deleted}" if args.delete else "run again with --delete to remove them"
    print(f"{len(orphans)} orphaned API key(s) and usage plan(s); {action}", file=sys.stderr)
    return 0


def vars_of(orphan: Any) -> dict[str, str]:
    return {name: str(getattr(orphan, name)) for name in orphan.__slots__}


def _migrate(args: argparse.Namespace) -> int:
    _use_stack(args, "AWS_ENDPOINT_URL", USAGE_PLAN_NAME_PREFIX=args.stack, TENANTS_TABLE=args.tenants_table)
    from tenantry import aws, edge, upgrade  # noqa: PLC0415 - after the env is set

    api_id = args.api_id or _api_id_of(aws.apigateway(), f"{args.stack}-api")
    stage = edge.Stage(api_id=api_id, stage=args.stage) if api_id else None
    report = upgrade.migrate(stage)
    if args.json:
        print(json.dumps({name: getattr(report, name) for name in report.__slots__}))
        return 0
    print(
        f"{report.tenants} tenant(s): {report.identities_created} usage identities created, "
        f"{report.keys_stamped} key(s) stamped, {report.old_keys_deleted} old API key(s) deleted"
    )
    if not report.cache_flushed:
        print(
            f"the authorizer cache was not flushed ({'no API found' if stage is None else 'flush failed'}): "
            f"{report.old_keys_left} old API key(s) kept; run this again to delete them",
            file=sys.stderr,
        )
    return 0


def _api_id_of(apigateway: Any, name: str) -> str:
    """The REST API called ``name`` (the template names it ``<stack>-api``), or "" if none is."""
    for page in apigateway.get_paginator("get_rest_apis").paginate():
        for api in page.get("items", []):
            if api.get("name") == name:
                return str(api["id"])
    return ""


def register_migrate(key_actions: Any) -> None:
    """``tenantry keys migrate``: the upgrade to one usage identity per tenant (tenantry.upgrade),
    with the operator's AWS credentials. Safe to run again at any point."""
    migrate = key_actions.add_parser(
        "migrate", help="Give every tenant one usage identity and retire its keys' own API keys"
    )
    migrate.add_argument("--table", required=True, help="ApiKeys table name (stack output ApiKeysTableName)")
    migrate.add_argument(
        "--tenants-table", required=True, help="Tenants table name (stack output TenantsTableName)"
    )
    migrate.add_argument(
        "--stack", required=True, help="the stack's name (its usage plans and keys carry it)"
    )
    migrate.add_argument("--api-id", help="REST API id (stack output ApiId; default: found by name)")
    migrate.add_argument("--stage", default="v1", help="the stage whose authorizer cache is flushed")
    migrate.add_argument("--region", help="AWS region (default: your AWS configuration)")
    migrate.add_argument("--endpoint-url", help="AWS endpoint, e.g. the embedded one of make dev")
    migrate.add_argument("--json", action="store_true", help="Print JSON")
    migrate.set_defaults(handler=_migrate)


def register_sweep(key_actions: Any) -> None:
    """``tenantry keys sweep``: with the operator's AWS credentials, like ``admin-key create``."""
    sweep = key_actions.add_parser(
        "sweep",
        help="Report (and with --delete remove) API keys and tenant usage plans nothing uses",
    )
    sweep.add_argument("--table", required=True, help="ApiKeys table name (stack output ApiKeysTableName)")
    sweep.add_argument(
        "--tenants-table", required=True, help="Tenants table name (stack output TenantsTableName)"
    )
    sweep.add_argument("--stack", required=True, help="the stack's name (its keys are tagged with it)")
    sweep.add_argument("--delete", action="store_true", help="delete the orphans (default: report only)")
    sweep.add_argument(
        "--min-age-minutes", type=float, default=15, help="leave younger keys alone (onboardings in flight)"
    )
    sweep.add_argument("--region", help="AWS region (default: your AWS configuration)")
    sweep.add_argument("--endpoint-url", help="AWS endpoint, e.g. the embedded one of make dev")
    sweep.add_argument("--json", action="store_true", help="Print JSON")
    sweep.set_defaults(handler=_sweep)


def register(subcommands: Any) -> None:
    admin_key = subcommands.add_parser("admin-key", help="Manage admin keys in the ApiKeys table")
    actions = admin_key.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="Write a new admin key's hash and print the key once")
    create.add_argument("--table", required=True, help="ApiKeys table name (stack output ApiKeysTableName)")
    create.add_argument("--region", help="AWS region (default: your AWS configuration)")
    create.add_argument("--endpoint-url", help="DynamoDB endpoint, e.g. the embedded one of make dev")
    create.add_argument("--expires-in-days", type=int, help="Lifetime; default never expires")
    create.add_argument("--json", action="store_true", help="Print JSON")
    create.set_defaults(handler=_create)
