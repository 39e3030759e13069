"""IAM proven against the code: every AWS call the functions made in the unit and integration suites
is allowed by that function's role in the translated template, and every grant is used.

``make test`` records the calls first (``TENANTRY_AWS_CALLS``, see ``local/aws_calls.py``) while it
runs ``tests/unit`` and the integration suite, then runs this module. Run on its own, it finds the
last recording or makes one (``tests/iam/conftest.py``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from local import aws_calls
from tests.iam.conftest import recorded_calls_folder
from tooling import iam_policy
from tooling.sam_translate import translated_template


@pytest.fixture(scope="module")
def folder() -> Path:
    return recorded_calls_folder()


@pytest.fixture(scope="module")
def calls(folder: Path) -> dict[str, list[aws_calls.Call]]:
    recorded = aws_calls.read_calls(folder)
    assert recorded, f"{folder} holds no recorded calls: did the unit and integration suites run?"
    template_functions = set(iam_policy.functions(translated_template()))
    by_function: dict[str, list[aws_calls.Call]] = defaultdict(list)
    for call in recorded:
        # Overlay functions (tests' echo and crash handlers) are not deployed, and a table the
        # template does not define is a test's deliberately missing one (the 503 health check).
        # Calls made with an assumed role's session are that role's (see role_calls).
        if call.function in template_functions and _names_a_template_table(call) and not call.role:
            by_function[call.function].append(call)
    return by_function


@pytest.fixture(scope="module")
def role_calls(folder: Path) -> dict[str, list[aws_calls.Call]]:
    """Calls made with sessions of the template's own roles (TenantDataRole), by role."""
    by_role: dict[str, list[aws_calls.Call]] = defaultdict(list)
    for call in aws_calls.read_calls(folder):
        if call.role and _names_a_template_table(call):
            by_role[call.role].append(call)
    return by_role


def _session_context(call: aws_calls.Call, leading_keys: list[str] | None) -> dict[str, object]:
    """The request context IAM evaluates the role's conditions in: its session tag and keys."""
    context: dict[str, object] = {"aws:PrincipalTag/TenantId": call.tenant} if call.tenant else {}
    if leading_keys is not None:
        context["dynamodb:LeadingKeys"] = leading_keys
    return context


def _names_a_template_table(call: aws_calls.Call) -> bool:
    if not call.action.startswith("dynamodb:") or ":table/" not in call.resource:
        return True
    table = call.resource.split(":table/", 1)[1].split("/", 1)[0]
    return table in translated_template()["Resources"]


def _grant_hint(call: aws_calls.Call) -> str:
    logical_ids = set(translated_template()["Resources"])
    if call.resource == "*" or call.resource.startswith("unmapped"):
        return (
            f"  {call.function} called {call.operation} ({call.action}), a service local/aws_calls.py\n"
            f"    cannot name resources of yet: add it to authorizations() there (IAM's resource ARN\n"
            f"    for each operation), then grant the ARN it names (seen in {call.test or 'integration'})."
        )
    resource = iam_policy.as_template_sub(call.resource, logical_ids)
    return (
        f"  {call.function} may not call {call.action} on {call.resource}\n"
        f"    (API {call.operation}, seen in {call.test or 'the integration suite (local gateway)'}).\n"
        f"    Grant it in template.yaml under {call.function} > Policies:\n"
        f"      - Statement:\n"
        f"          - Effect: Allow\n"
        f"            Action: [{call.action}]\n"
        f"            Resource: {resource}"
    )


def test_every_function_of_the_template_made_calls_that_were_recorded(calls) -> None:
    # A function whose calls were never recorded would pass the checks below vacuously. One with no
    # grants of its own (only the managed logging and tracing policies, like the console, which
    # serves its own files) has nothing to check: it is right to make no call.
    tpl = translated_template()
    grantless = {
        function
        for function in iam_policy.functions(tpl)
        if all(statement.managed for statement in iam_policy.role_statements(tpl, function))
    }
    assert "ConsoleFunction" in grantless
    missing = set(iam_policy.functions(tpl)) - set(calls) - grantless
    assert missing == set(), f"no recorded AWS calls for {sorted(missing)}: does a test invoke them?"


def test_every_recorded_call_is_allowed_by_the_functions_role(calls) -> None:
    tpl = translated_template()
    refused: list[str] = []
    for function, function_calls in sorted(calls.items()):
        statements = iam_policy.role_statements(tpl, function)
        for call in sorted(function_calls, key=lambda c: (c.action, c.resource)):
            decision = iam_policy.evaluate(statements, call.action, call.resource)
            if not decision.allowed:
                refused.append(f"{_grant_hint(call)}\n    ({decision.reason})")
    assert not refused, "IAM would refuse these calls:\n" + "\n".join(refused)


def test_every_grant_is_used_by_some_call(calls) -> None:
    tpl = translated_template()
    unused: list[str] = []
    for function in iam_policy.functions(tpl):
        function_calls = calls.get(function, [])
        for statement in iam_policy.role_statements(tpl, function):
            if statement.managed or statement.effect != "Allow":
                continue
            for action in statement.actions:
                for resource in statement.resources:
                    if not any(
                        iam_policy.Statement(
                            "Allow", (action,), (), (resource,), (), False, "", "", False
                        ).matches(call.action, call.resource)
                        for call in function_calls
                    ):
                        unused.append(f"  {function}: {action} on {resource} ({statement.label})")
    assert not unused, (
        "grants no recorded call uses (remove them from template.yaml, or add a test that makes the call):\n"
        + "\n".join(unused)
    )


def test_no_grant_uses_a_star_resource_where_a_narrower_arn_exists(calls) -> None:
    tpl = translated_template()
    broad: list[str] = []
    for function in iam_policy.functions(tpl):
        for statement in iam_policy.role_statements(tpl, function):
            if statement.managed or statement.effect != "Allow" or "*" not in statement.resources:
                continue
            for action in statement.actions:
                if not iam_policy.resourceless(action):
                    seen = sorted(
                        {c.resource for c in calls.get(function, []) if c.action.lower() == action.lower()}
                    )
                    broad.append(f"  {function}: {action} on * ({statement.label}); calls used {seen}")
    assert not broad, "grants on * for actions that take resource ARNs:\n" + "\n".join(broad)


# ---------------------------------------------------------------------- assumed roles (TenantDataRole)
def test_tenant_requests_made_calls_with_tenant_data_role_sessions(role_calls) -> None:
    assert role_calls.get("TenantDataRole"), "no call was made with a TenantDataRole session"


def test_every_call_of_an_assumed_role_session_is_allowed_under_its_conditions(role_calls) -> None:
    tpl = translated_template()
    refused: list[str] = []
    for role, role_call_list in sorted(role_calls.items()):
        statements = iam_policy.named_role_statements(tpl, role)
        for call in role_call_list:
            own = call.leading_keys is not None and call.leading_keys == [call.tenant]
            if not own:
                continue  # a deliberate cross-tenant call of a negative test: denied, see below
            decision = iam_policy.evaluate(
                statements, call.action, call.resource, _session_context(call, call.leading_keys)
            )
            if not decision.allowed:
                refused.append(
                    f"  {role} ({call.function}): {call.action} on {call.resource} ({decision.reason})"
                )
    assert not refused, "IAM would refuse these tenant-scoped calls:\n" + "\n".join(refused)


def test_tenant_a_session_never_reaches_tenant_b_key(role_calls) -> None:
    # Every call a tenant's session made, replayed with another tenant's key (alone, or mixed into
    # a batch with its own), and with no key at all (a Scan, a PartiQL statement)
    tpl = translated_template()
    reached: list[str] = []
    for role, role_call_list in sorted(role_calls.items()):
        statements = iam_policy.named_role_statements(tpl, role)
        for call in role_call_list:
            # Another tenant than the caller, whatever id the recorded call's test gave its tenant
            # (the recorder keeps the first of like calls, so which test's tenant it is varies)
            other = f"other-than-{call.tenant}"
            for keys in ([other], [call.tenant, other], None):
                decision = iam_policy.evaluate(
                    statements, call.action, call.resource, _session_context(call, keys)
                )
                if decision.allowed:
                    reached.append(f"  {role}: {call.action} on {call.resource} with keys {keys}")
    assert not reached, "a tenant's session reaches other partitions:\n" + "\n".join(reached)


def test_every_grant_of_an_assumed_role_is_used(role_calls) -> None:
    tpl = translated_template()
    unused: list[str] = []
    for role in sorted(role_calls):
        for statement in iam_policy.named_role_statements(tpl, role):
            for action in statement.actions:
                for resource in statement.resources:
                    probe = iam_policy.Statement(
                        "Allow", (action,), (), (resource,), (), False, "", "", False
                    )
                    if not any(probe.matches(call.action, call.resource) for call in role_calls[role]):
                        unused.append(f"  {role}: {action} on {resource} ({statement.label})")
    assert not unused, "grants no recorded tenant-scoped call uses:\n" + "\n".join(unused)
