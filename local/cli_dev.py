"""Subcommands of ``tenantry`` for this area (filled in by the feature that owns them)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subcommands: Any) -> None:
    """Add this area's subcommands to ``subcommands`` (an argparse sub-parsers action)."""
    _ = (subcommands, argparse)
