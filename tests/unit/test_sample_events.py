"""Every sample event in events/ is a test input somewhere in the suite."""

from __future__ import annotations

import json

from tests.conftest import REPO_ROOT


def test_every_events_file_is_valid_json_and_used_by_a_test() -> None:
    test_sources = "\n".join(
        path.read_text(encoding="utf-8")
        for path in (REPO_ROOT / "tests").rglob("*.py")
        if path.name != "test_sample_events.py"
    )
    files = sorted((REPO_ROOT / "events").glob("*.json"))
    assert files
    for path in files:
        json.loads(path.read_text(encoding="utf-8"))
        assert path.stem in test_sources, f"{path.name} is not exercised by any test"
