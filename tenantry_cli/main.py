"""The ``tenantry`` command: developer and operator tooling. Each area registers its subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tenantry_cli import admin, chat, dev, logs, metering, ops


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantry", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)
    for area in (admin, chat, dev, logs, metering, ops):
        area.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
