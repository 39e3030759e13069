"""Every sample event in events/ is a test input somewhere in the suite."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.conftest import REPO_ROOT


def _constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_every_events_file_is_valid_json_and_used_by_a_test() -> None:
    # Given the string literals of every test module that reads from events/
    used: set[str] = set()
    for path in (REPO_ROOT / "tests").rglob("*.py"):
        constants = _constants(path)
        if path.name != "test_sample_events.py" and "events" in constants:
            used |= constants
    files = sorted((REPO_ROOT / "events").glob("*.json"))
    assert files
    for path in files:
        json.loads(path.read_text(encoding="utf-8"))
        # Then each file is named by one of them, whole ("health.json", or "health" beside "events"),
        # not merely contained in some longer text
        assert {path.name, path.stem} & used, f"{path.name} is not exercised by any test"
