"""The ``tenantry`` command: developer and operator tooling. Each area registers its subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tenantry_cli import admin, chat, dev, events, logs, metering, ops

HELP = """\
Operate a Tenantry API: onboard and offboard tenants, issue and revoke keys, read usage and stats,
replay metering, follow logs; and run the whole API on this machine (tenantry dev, behind make dev).
The same commands drive the local stack and a deployed stage.

environment:
  TENANTRY_URL        the API's base URL (default http://127.0.0.1:3000, the local stack; for a
                      stage, https://<api>.execute-api.<region>.amazonaws.com/v1)
  TENANTRY_ADMIN_KEY  an admin key (default: the local stack's $TENANTRY_HOME/admin-key)
  TENANTRY_HOME       the local stack's state folder (default .tenantry)
  AWS_PROFILE, AWS_REGION  the operator's AWS credentials, for admin-key create and metering replay

examples:
  tenantry dev                                   serve the API locally (what make dev runs)
  tenantry tenants create --name Acme --tier pro onboard a tenant; its key is printed once
  tenantry keys rotate acme-1a2b3c --grace-seconds 3600
  tenantry usage acme-1a2b3c --days 7            daily and monthly counters, estimated cost
  TENANTRY_URL=https://abc.execute-api.eu-west-1.amazonaws.com/v1 tenantry stats
  tenantry tenants delete acme-1a2b3c            offboard (asks you to type the id; --yes skips)
  TENANTRY_KEY=tnt_live_… tenantry events tail   a tenant's events as they are stored
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenantry", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    subcommands = parser.add_subparsers(dest="command", required=True)
    for area in (admin, chat, dev, events, logs, metering, ops):
        area.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
