"""template.yaml translated to plain CloudFormation, offline, the way ``sam deploy`` submits it.

The SAM transform runs in :mod:`samtranslator` (the library SAM CLI and CloudFormation's own
transform use), so tests can inspect what CloudFormation will really create: the stages, the
generated roles and their policies, the permissions.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from local import template
from local.template import REGION

ARTIFACT_BUCKET = "sam-artifacts"
# The transform logs feature-toggle chatter at INFO/WARNING for every run.
logging.getLogger("samtranslator").setLevel(logging.ERROR)


def translate(
    tpl: dict[str, Any], parameter_values: dict[str, Any] | None = None, region: str = REGION
) -> dict[str, Any]:
    """A SAM template (long-form intrinsics) as the CloudFormation template the transform yields,
    for a deploy with ``parameter_values`` (the rest at their defaults) into ``region``."""
    source = copy.deepcopy(tpl)
    _as_packaged(source)
    # The session only names the region (for partition-specific ARNs); nothing calls AWS. The
    # template names managed policies by ARN, so the managed-policy map stays empty.
    session = boto3.session.Session(region_name=region)
    translated: dict[str, Any] = Translator(None, Parser(), boto_session=session).translate(
        source, parameter_values=dict(parameter_values or {}), get_managed_policy_map=dict
    )
    return translated


def _as_packaged(tpl: dict[str, Any]) -> None:
    """Local code folders become S3 URIs, as ``sam package`` uploads them before the transform."""
    for resource in (tpl.get("Resources") or {}).values():
        props = resource.get("Properties") or {}
        for uri in ("CodeUri", "ContentUri"):
            if isinstance(props.get(uri), str) and not props[uri].startswith("s3://"):
                props[uri] = f"s3://{ARTIFACT_BUCKET}/{props[uri].strip('/')}"


@cache
def translated_template(path: Path = template.TEMPLATE_PATH) -> dict[str, Any]:
    """The translated template.yaml (cached: the transform takes about a second)."""
    return translate(template.load_template(path))


def main(argv: list[str] | None = None) -> int:
    """``python -m tooling.sam_translate --write FILE``: the translated template as JSON (for cfn-lint)."""

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write", type=Path, required=True, help="where to write the JSON template")
    args = parser.parse_args(argv)
    args.write.parent.mkdir(parents=True, exist_ok=True)
    args.write.write_text(
        json.dumps(translated_template(), indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
