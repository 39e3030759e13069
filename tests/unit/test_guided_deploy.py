"""`sam deploy --guided` with every default answer, as the pinned SAM CLI asks it, offline.

The committed samconfig.toml is what a first deploy starts from. The guided prompts are SAM CLI's
own code (samcli.commands.deploy); only the two steps that would reach AWS are replaced: the
managed-bucket lookup and the deploy itself, which here records what it was asked to deploy.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from local import template

REPO = template.REPO_ROOT
SAMCONFIG = REPO / "samconfig.toml"
NAMED_IAM = {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"}


def _deploy_parameters(path: Path) -> dict[str, Any]:
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    return {**config["default"]["global"]["parameters"], **config["default"]["deploy"]["parameters"]}


def test_the_committed_samconfig_names_the_capabilities_the_named_roles_need() -> None:
    # Given the committed samconfig.toml and the template's named IAM roles
    parameters = _deploy_parameters(SAMCONFIG)
    named_roles = [
        logical_id
        for logical_id, resource in template.template()["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role" and "RoleName" in (resource.get("Properties") or {})
    ]
    # Then the deploy asks CloudFormation for CAPABILITY_NAMED_IAM, which named roles require
    assert named_roles, "no named role: CAPABILITY_NAMED_IAM may no longer be needed"
    assert set(parameters["capabilities"].split()) == NAMED_IAM
    # And the stack name fits the roles' names (<stack>-tenant-data within IAM's 64 characters)
    assert len(parameters["stack_name"]) <= 52
    assert parameters["resolve_s3"] is True


@pytest.fixture
def guided(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run ``sam deploy --guided`` in a copy of the project's template and samconfig, answering
    each prompt with ``answers`` (Enter = the default); the deploy's arguments and the saved file."""
    from samcli.commands.deploy import command, deploy_context, guided_context
    from samcli.commands.package import package_context

    shutil.copy(REPO / "template.yaml", tmp_path / "template.yaml")
    shutil.copy(SAMCONFIG, tmp_path / "samconfig.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("SAM_CLI_TELEMETRY", "0")
    monkeypatch.setattr(guided_context, "manage_stack", lambda **_: "aws-sam-cli-managed-bucket")
    # Image functions' ECR repositories (a companion stack, looked up in AWS): the template has none.
    assert all(
        (resource.get("Properties") or {}).get("PackageType", "Zip") == "Zip"
        for resource in template.resources_of_type("AWS::Serverless::Function").values()
    )
    monkeypatch.setattr(guided_context.GuidedContext, "prompt_image_repository", lambda *_, **__: {})

    deployed: list[dict[str, Any]] = []

    class Offline:
        """Stands in for SAM CLI's package and deploy steps; the deploy records its arguments."""

        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

        def __enter__(self) -> Offline:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def run(self) -> None:
            if "capabilities" in self.kwargs:
                deployed.append(self.kwargs)

    monkeypatch.setattr(package_context, "PackageContext", Offline)
    monkeypatch.setattr(deploy_context, "DeployContext", Offline)

    def run(answers: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        result = CliRunner().invoke(
            command.cli,
            ["--guided", "--template-file", "template.yaml"],
            input=answers,
            catch_exceptions=True,
        )
        assert result.exit_code == 0 and len(deployed) == 1, result.output
        return deployed.pop(), _deploy_parameters(tmp_path / "samconfig.toml"), result.output

    return run


def test_guided_deploy_with_every_default_answer_asks_for_named_iam(guided) -> None:
    # When an operator presses Enter at every prompt of `sam deploy --guided`
    deployed, saved, output = guided("\n" * 100)
    # Then the deploy asks for both IAM capabilities (named roles need CAPABILITY_NAMED_IAM)
    assert set(deployed["capabilities"]) == NAMED_IAM, output
    assert deployed["stack_name"] == "tenantry"
    assert deployed["region"] == "eu-west-1"
    # And every template parameter was offered with the template's default
    defaults = template.template()["Parameters"]
    for name in defaults:
        assert f"Parameter {name}" in output, name
    assert deployed["confirm_changeset"] is True
    # And the answers saved for the next `sam deploy` keep them
    assert set(saved["capabilities"].split()) == NAMED_IAM
    assert saved["stack_name"] == "tenantry"


def test_the_guided_prompts_are_the_ones_the_operations_guide_lists(guided) -> None:
    # Given the prompts of the pinned SAM CLI's guided deploy, in their order
    _, _, output = guided("\n" * 100)
    prompts = [
        "Stack Name",
        "AWS Region",
        "Parameter AnthropicApiKeyParameter",
        "Confirm changes before deploy",
        "Allow SAM CLI IAM role creation",
        "Disable rollback",
        "Save arguments to configuration file",
        "SAM configuration file",
        "SAM configuration environment",
    ]
    positions = [output.index(prompt) for prompt in prompts]
    assert positions == sorted(positions), output
    # Then docs/operations.md names each of them, in the same order
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    deploy_section = guide[guide.index("## Deploy") : guide.index("### Deploy parameters")]
    documented = [deploy_section.index(prompt) for prompt in prompts]
    assert documented == sorted(documented)


def test_answering_n_to_iam_role_creation_offers_the_same_capabilities(guided) -> None:
    # When the operator answers "n" to "Allow SAM CLI IAM role creation" and Enter elsewhere
    answers = ["\n"] * 2 + ["\n"] * len(template.template()["Parameters"]) + ["\n", "n\n"] + ["\n"] * 50
    deployed, _, output = guided("".join(answers))
    # Then the Capabilities prompt defaults to the configured pair, not CAPABILITY_IAM alone
    assert "Capabilities [['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM']]" in output, output
    assert set(deployed["capabilities"]) == NAMED_IAM
