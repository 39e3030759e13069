"""The checkov baseline: every accepted finding names a resource of the translated template and
says why; the comparison fails on an unexplained finding and on an entry that no longer fails.
(make checkov runs checkov itself, in its own venv, and this comparison on its report.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from local import template
from tooling.checkov import baseline as checkov_baseline
from tooling.sam_translate import translated_template

BASELINE = template.REPO_ROOT / "tooling" / "checkov" / "baseline.yaml"


def _baseline() -> dict[str, object]:
    loaded = yaml.safe_load(BASELINE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _report(*findings: tuple[str, str]) -> dict[str, object]:
    return {"results": {"failed_checks": [{"check_id": c, "resource": r} for c, r in findings]}}


def test_every_accepted_finding_names_a_resource_of_the_template_and_a_reason() -> None:
    resources = translated_template()["Resources"]
    for check_id, (kind, logical_id) in (
        (check_id, resource.split(".", 1)) for check_id, resource in checkov_baseline.accepted(_baseline())
    ):
        assert logical_id in resources, (check_id, logical_id)
        assert resources[logical_id]["Type"] == kind, (check_id, logical_id)


def test_the_baseline_explains_exactly_the_findings() -> None:
    accepted = sorted(checkov_baseline.accepted(_baseline()))
    # A report of exactly the accepted findings passes
    assert checkov_baseline.compare(_report(*accepted), _baseline()) == (set(), set())
    # One more finding is unexplained; one fewer leaves a stale entry
    extra = ("CKV_AWS_999", "AWS::Lambda::Function.NewFunction")
    assert checkov_baseline.compare(_report(*accepted, extra), _baseline()) == ({extra}, set())
    assert checkov_baseline.compare(_report(*accepted[1:]), _baseline()) == (set(), {accepted[0]})


def test_an_entry_without_a_reason_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        checkov_baseline.accepted({"CKV_AWS_1": {"resources": ["AWS::S3::Bucket.B"]}})
    report = tmp_path / "report.json"
    report.write_text('{"results": {"failed_checks": [{"check_id": "CKV_AWS_1", "resource": "X.Y"}]}}')
    assert checkov_baseline.main([str(report), str(BASELINE)]) == 1
