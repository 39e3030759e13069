"""A small IAM evaluator for the translated template's function roles.

It answers one question the way IAM's identity-policy evaluation does: may this role perform this
action on this resource? An explicit Deny wins, then any Allow, otherwise the implicit deny.
Actions match case-insensitively and resources case-sensitively, both with ``*`` and ``?``
wildcards; ``NotAction`` and ``NotResource`` are honoured. Intrinsics (``Ref``, ``Fn::GetAtt``,
``Fn::Sub``, ``Fn::Join``, ``Fn::If``…) are resolved against the template with fixed pseudo
parameters, each stack resource's name being its logical id.

Conditions are evaluated only when the caller gives the request's context (condition keys such as
``dynamodb:LeadingKeys`` and the principal's tags, for ``${aws:PrincipalTag/…}``), with the
operators the template uses (``StringEquals``, ``StringLike``, ``ForAllValues:StringEquals``,
``Null``); any other operator is a :class:`PolicyError`. Without a context an Allow with a
``Condition`` is never counted as granting, and a Deny with one always is, so the answer errs
towards "denied". Not modelled, on purpose: resource policies, permission boundaries and SCPs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from local.template import ACCOUNT_ID, PARTITION, REGION

STACK_NAME = "tenantry"

# AWS managed policies the template attaches (by ARN), with the statements that matter here.
# They serve the Lambda runtime (logs) and X-Ray, not the code's own calls.
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        },
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ],
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        },
    ],
}
# Inline policies SAM generates for the Lambda service itself (not the code): a function's
# dead-letter queue is written by Lambda when an async invocation fails.
RUNTIME_POLICY_NAMES = ("DeadLetterQueuePolicy",)

# Actions IAM authorizes only on "*" (no resource-level permissions), so "*" is the narrowest ARN.
RESOURCELESS_ACTIONS = ("xray:*", "cloudwatch:PutMetricData", "ssm:DescribeParameters", "logs:CreateLogGroup")


class PolicyError(ValueError):
    """The template holds something this evaluator does not model."""


@dataclass(frozen=True)
class Statement:
    effect: str  # Allow | Deny
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_resources: tuple[str, ...]
    has_condition: bool
    sid: str
    origin: str  # the policy it came from: "<PolicyName>" or the managed policy ARN
    managed: bool  # serves the Lambda service (logs, X-Ray, event sources, DLQ), not the code's calls
    conditions: Any = None  # the resolved Condition block, if any

    def matches(self, action: str, resource: str) -> bool:
        if self.actions and not any(_matches(pattern, action, fold=True) for pattern in self.actions):
            return False
        if self.not_actions and any(_matches(pattern, action, fold=True) for pattern in self.not_actions):
            return False
        if self.resources and not any(_matches(pattern, resource) for pattern in self.resources):
            return False
        return not (self.not_resources and any(_matches(pattern, resource) for pattern in self.not_resources))

    @property
    def label(self) -> str:
        return f"{self.origin}/{self.sid}" if self.sid else self.origin


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "allowed by …", "explicitly denied by …", "no statement allows it"


@cache
def _pattern(pattern: str, fold: bool) -> re.Pattern[str]:
    body = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile(f"^{body}$", (re.IGNORECASE if fold else 0) | re.DOTALL)


def _matches(pattern: str, value: str, *, fold: bool = False) -> bool:
    return _pattern(pattern, fold).match(value) is not None


def evaluate(
    statements: list[Statement], action: str, resource: str, context: dict[str, Any] | None = None
) -> Decision:
    """IAM's identity-policy logic: explicit Deny > Allow > implicit deny.

    ``context`` maps condition keys to the request's values (a list for multi-valued keys such as
    ``dynamodb:LeadingKeys``; absent keys are left out) and ``aws:PrincipalTag/<key>`` to the
    principal's tags; with it, conditions are evaluated instead of assumed."""

    def applies(statement: Statement) -> bool:
        if not statement.matches(action, resource):
            return False
        if not statement.has_condition:
            return True
        if context is None:
            return statement.effect == "Deny"
        return conditions_hold(statement.conditions or {}, context)

    denies = [s for s in statements if s.effect == "Deny" and applies(s)]
    if denies:
        return Decision(False, f"explicitly denied by {denies[0].label}")
    allows = [s for s in statements if s.effect == "Allow" and applies(s)]
    if allows:
        return Decision(True, f"allowed by {allows[0].label}")
    conditional = [
        s for s in statements if s.effect == "Allow" and s.has_condition and s.matches(action, resource)
    ]
    if conditional:
        why = "its Condition does not hold" if context is not None else "a Condition this test does not model"
        return Decision(False, f"only {conditional[0].label} allows it, under {why}")
    return Decision(False, "no statement allows it")


def _variables(text: str, context: dict[str, Any]) -> str | None:
    """``${aws:PrincipalTag/TenantId}`` and friends from the context; None if one is missing."""
    missing: list[str] = []

    def substitute(found: re.Match[str]) -> str:
        value = context.get(found.group(1))
        if value is None:
            missing.append(found.group(1))
            return ""
        return str(value)

    resolved = re.sub(r"\$\{([^}]+)\}", substitute, text)
    return None if missing else resolved


def conditions_hold(conditions: dict[str, Any], context: dict[str, Any]) -> bool:
    """Every operator's every key holds (IAM ANDs them; a key's listed values are ORed)."""
    for operator, pairs in conditions.items():
        for key, expected in pairs.items():
            wanted = [_variables(str(item), context) for item in _as_tuple(expected)]
            patterns = [item for item in wanted if item is not None]
            actual = context.get(key)
            values = [str(item) for item in actual] if isinstance(actual, list | tuple) else actual
            if operator == "Null":
                if (actual is None) != (str(expected).lower() == "true"):
                    return False
            elif operator == "ForAllValues:StringEquals":
                if values is not None and not all(value in patterns for value in _as_tuple(values)):
                    return False
            elif operator in ("StringEquals", "StringLike"):
                fold = False
                if values is None or not any(
                    (value == pattern if operator == "StringEquals" else _matches(pattern, value, fold=fold))
                    for value in _as_tuple(values)
                    for pattern in patterns
                ):
                    return False
            else:
                raise PolicyError(f"condition operator {operator} is not modelled in tooling/iam_policy.py")
    return True


# ---------------------------------------------------------------------- the template's roles
class Resolver:
    """Intrinsics of the translated template, resolved with fixed pseudo parameters."""

    def __init__(self, tpl: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        self.tpl = tpl
        self.resources: dict[str, Any] = tpl.get("Resources", {})
        self.parameters = {name: spec.get("Default") for name, spec in (tpl.get("Parameters") or {}).items()}
        self.parameters.update(parameters or {})
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::StackName": STACK_NAME,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            kind = self.resources[name]["Type"]
            if kind == "AWS::SQS::Queue":
                return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
            # Tables, log groups, functions, APIs…: their Ref is their name (or id); the logical id here.
            return name
        raise PolicyError(f"Ref to unknown {name}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise PolicyError(f"GetAtt of unknown {logical_id}")
        kind = resource["Type"]
        if attribute == "Arn" or attribute.endswith("Arn"):
            service_resource = {
                "AWS::DynamoDB::Table": ("dynamodb", f"table/{logical_id}"),
                "AWS::SQS::Queue": ("sqs", logical_id),
                "AWS::Lambda::Function": ("lambda", f"function:{logical_id}"),
                "AWS::Logs::LogGroup": ("logs", f"log-group:{logical_id}:*"),
                "AWS::SNS::Topic": ("sns", logical_id),
            }.get(kind)
            if kind == "AWS::IAM::Role":
                return f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{logical_id}"
            if attribute == "StreamArn" and kind == "AWS::DynamoDB::Table":
                return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{logical_id}/stream/*"
            if service_resource is not None:
                service, rest = service_resource
                return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT_ID}:{rest}"
        if attribute == "QueueName":
            return logical_id
        raise PolicyError(
            f"GetAtt {logical_id}.{attribute} ({kind}) is not modelled in tooling/iam_policy.py"
        )

    def condition(self, name: str) -> bool:
        return bool(self.value(self.tpl["Conditions"][name]))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {key: self.value(item) for key, item in node.items()}
        ((name, argument),) = node.items()
        if name == "Ref":
            return self.ref(argument)
        if name == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.get_att(logical_id, attribute)
        if name == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            resolved = {key: self.value(item) for key, item in variables.items()}

            def substitute(found: re.Match[str]) -> str:
                key = found.group(1)
                if key in resolved:
                    return str(resolved[key])
                if "." in key:
                    return str(self.get_att(*key.split(".", 1)))
                return str(self.ref(key))

            return re.sub(r"\$\{([^}!][^}]*)\}", substitute, text)
        if name == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self.value(items))
        if name == "Fn::If":
            condition, then, otherwise = argument
            return self.value(then if self.condition(condition) else otherwise)
        if name == "Fn::Equals":
            left, right = self.value(argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.value(argument[0])
        if name == "Fn::And":
            return all(self.value(item) for item in argument)
        if name == "Fn::Or":
            return any(self.value(item) for item in argument)
        if name == "Condition":
            return self.condition(argument)
        if name == "Fn::Select":
            index, items = argument
            return self.value(items)[int(index)]
        if name == "Fn::Split":
            separator, text = argument
            return str(self.value(text)).split(separator)
        if name.startswith("Fn::"):
            raise PolicyError(f"{name} is not modelled in tooling/iam_policy.py")
        return {name: self.value(argument)}


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(str(item) for item in items if item != "AWS::NoValue" and item is not None)


def _statements(
    document: dict[str, Any], origin: str, resolver: Resolver, *, managed: bool
) -> list[Statement]:
    raw = document.get("Statement", [])
    statements: list[Statement] = []
    for index, unresolved in enumerate(raw if isinstance(raw, list) else [raw]):
        entry = resolver.value(unresolved)
        statements.append(
            Statement(
                effect=str(entry["Effect"]),
                actions=_as_tuple(entry.get("Action")),
                not_actions=_as_tuple(entry.get("NotAction")),
                resources=_as_tuple(entry.get("Resource")),
                not_resources=_as_tuple(entry.get("NotResource")),
                has_condition="Condition" in entry,
                conditions=entry.get("Condition"),
                sid=str(entry.get("Sid") or f"#{index}"),
                origin=origin,
                managed=managed,
            )
        )
    return statements


def role_of(tpl: dict[str, Any], function_logical_id: str) -> str:
    role = tpl["Resources"][function_logical_id]["Properties"]["Role"]
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        target = role["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    raise PolicyError(f"{function_logical_id}'s Role is not !GetAtt <Role>.Arn of this template")


def role_statements(
    tpl: dict[str, Any], function_logical_id: str, resolver: Resolver | None = None
) -> list[Statement]:
    """Every statement that applies to the function's role: inline, managed and attached policies."""
    return named_role_statements(tpl, role_of(tpl, function_logical_id), resolver)


def named_role_statements(
    tpl: dict[str, Any], role_id: str, resolver: Resolver | None = None
) -> list[Statement]:
    """Every statement of the template's role ``role_id`` (e.g. one that functions assume)."""
    resolver = resolver or Resolver(tpl)
    props = tpl["Resources"][role_id]["Properties"]
    statements: list[Statement] = []
    for policy in props.get("Policies") or []:
        if "Condition" in tpl["Resources"][role_id] and not resolver.condition(
            tpl["Resources"][role_id]["Condition"]
        ):
            continue
        name = str(policy["PolicyName"])
        runtime = name in RUNTIME_POLICY_NAMES
        statements += _statements(policy["PolicyDocument"], name, resolver, managed=runtime)
    for arn in _as_tuple(resolver.value(props.get("ManagedPolicyArns") or [])):
        if arn in MANAGED_POLICIES:
            statements += _statements({"Statement": MANAGED_POLICIES[arn]}, arn, resolver, managed=True)
        elif arn.startswith(f"arn:{PARTITION}:iam::aws:policy/"):
            raise PolicyError(f"managed policy {arn} on {role_id}: add its statements to MANAGED_POLICIES")
        else:
            raise PolicyError(f"{role_id} attaches {arn}: define the policy in the template instead")
    # Standalone policies that name this role.
    for logical_id, resource in tpl["Resources"].items():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = resource["Properties"].get("Roles") or []
            if {"Ref": role_id} in roles:
                statements += _statements(
                    resource["Properties"]["PolicyDocument"], logical_id, resolver, managed=False
                )
    return statements


def functions(tpl: dict[str, Any]) -> list[str]:
    return sorted(
        logical_id for logical_id, r in tpl["Resources"].items() if r["Type"] == "AWS::Lambda::Function"
    )


def as_template_sub(arn: str, logical_ids: set[str]) -> str:
    """An ARN as a ``!Sub`` a developer can paste into template.yaml."""
    text = arn.replace(f"arn:{PARTITION}:", "arn:${AWS::Partition}:")
    text = text.replace(f":{REGION}:", ":${AWS::Region}:").replace(f":{ACCOUNT_ID}:", ":${AWS::AccountId}:")
    for logical_id in sorted(logical_ids, key=len, reverse=True):
        text = re.sub(rf"(?<=[/:]){re.escape(logical_id)}(?=$|[/:])", "${" + logical_id + "}", text)
    return f'!Sub "{text}"'


def resourceless(action: str) -> bool:
    return any(_matches(pattern, action, fold=True) for pattern in RESOURCELESS_ACTIONS)
