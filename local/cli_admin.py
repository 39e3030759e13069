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


def _create(args: argparse.Namespace) -> int:
    os.environ["API_KEYS_TABLE"] = args.table
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = args.endpoint_url

    from tenantry import aws, tenancy  # noqa: PLC0415 - after the env is set

    aws.reset()
    expires = None if args.expires_in_days is None else args.expires_in_days * 86_400
    raw_key, info = tenancy.create_admin_key(expires)
    if args.json:
        print(json.dumps({"api_key": raw_key, "key": info.model_dump()}))
    else:
        print(f"Admin key (shown once, store it now): {raw_key}")
        print(f"key_id: {info.key_id}  expires_at: {info.expires_at or 'never'}", file=sys.stderr)
    return 0


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
