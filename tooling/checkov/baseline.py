"""Compare checkov's JSON report with the accepted findings: ``python -m tooling.checkov.baseline
REPORT BASELINE`` exits 1 on a finding the baseline does not explain, or on a baseline entry that
no longer fails (so the list never outlives its reasons)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def failed_checks(report: Any) -> set[tuple[str, str]]:
    """(check id, resource) of every failed check in checkov's ``-o json`` report."""
    sections = report if isinstance(report, list) else [report]
    return {
        (str(finding["check_id"]), str(finding["resource"]))
        for section in sections
        for finding in section.get("results", {}).get("failed_checks", [])
    }


def accepted(baseline: dict[str, Any]) -> set[tuple[str, str]]:
    """(check id, resource) the baseline accepts; every entry must say why."""
    pairs: set[tuple[str, str]] = set()
    for check_id, entry in baseline.items():
        if not str((entry or {}).get("reason", "")).strip():
            raise ValueError(f"{check_id}: an accepted finding needs a reason")
        pairs |= {(check_id, str(resource)) for resource in entry.get("resources") or []}
    return pairs


def compare(report: Any, baseline: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(unexplained findings, stale baseline entries)."""
    found = failed_checks(report)
    allowed = accepted(baseline)
    return found - allowed, allowed - found


def main(argv: list[str]) -> int:
    report_path, baseline_path = (Path(arg) for arg in argv)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    baseline = yaml.safe_load(baseline_path.read_text(encoding="utf-8")) or {}
    unexplained, stale = compare(report, baseline)
    found = failed_checks(report)
    print(
        f"checkov: {len(found)} findings, {len(found) - len(unexplained)} accepted in {baseline_path}, "
        f"{len(unexplained)} unexplained"
    )
    for check_id, resource in sorted(unexplained):
        print(f"  unexplained: {check_id} on {resource} (fix it, or add it to {baseline_path} with why)")
    for check_id, resource in sorted(stale):
        print(f"  stale: {check_id} on {resource} passes now: remove it from {baseline_path}")
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
