"""CloudFormation intrinsics resolved to the names the local stack uses.

Only what a function's environment or an API setting can reasonably hold is supported: ``Ref``,
``Fn::GetAtt``, ``Fn::Sub``, ``Fn::FindInMap``, ``Fn::Join``, ``Fn::Select`` and ``Fn::Split``.
Anything else raises :class:`UnsupportedIntrinsicError` naming the construct, so a template change
that the local stack cannot follow fails loudly at start rather than handing a handler a dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from local import template

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
_DROPPED = object()  # an item CloudFormation removes (AWS::NoValue)


class UnsupportedIntrinsicError(ValueError):
    """The template uses an intrinsic (or a reference) the local stack cannot resolve."""


@dataclass(frozen=True)
class LocalNames:
    """What pseudo parameters and resources are called locally."""

    stack_name: str = template.LOCAL_STACK_NAME
    region: str = "us-east-1"
    account_id: str = "123456789012"
    api_id: str = "localapi00"
    parameters: dict[str, str] = field(default_factory=dict)


class Resolver:
    """Resolves intrinsics in ``tpl`` (the long form that :mod:`local.template` loads)."""

    def __init__(self, tpl: dict[str, Any], names: LocalNames) -> None:
        self._tpl = tpl
        self._names = names
        self._resources: dict[str, Any] = tpl.get("Resources", {}) or {}
        self._parameters = {
            name: str(spec.get("Default", "")) for name, spec in (tpl.get("Parameters", {}) or {}).items()
        }
        self._parameters.update(names.parameters)

    # ---------------------------------------------------------------- names of things
    def function_name(self, logical_id: str) -> str:
        return f"{self._names.stack_name}-{logical_id}"

    def function_arn(self, logical_id: str) -> str:
        return (
            f"arn:aws:lambda:{self._names.region}:{self._names.account_id}:function:"
            f"{self.function_name(logical_id)}"
        )

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": self._names.stack_name,
            "AWS::Region": self._names.region,
            "AWS::AccountId": self._names.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self._names.region}:{self._names.account_id}:"
                f"stack/{self._names.stack_name}/local"
            ),
        }
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::NoValue":
            raise UnsupportedIntrinsicError("AWS::NoValue outside a list or map")
        if name in self._parameters:
            return self._parameters[name]
        resource = self._resources.get(name)
        if resource is None:
            raise UnsupportedIntrinsicError(f"!Ref {name}: no such parameter or resource")
        kind = resource.get("Type", "")
        if kind == "AWS::DynamoDB::Table":
            return template.local_table_name(name, self._names.stack_name)
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return self.function_name(name)
        if kind in ("AWS::Serverless::Api", "AWS::ApiGateway::RestApi"):
            return self._names.api_id
        if kind == "AWS::Logs::LogGroup":
            group = (resource.get("Properties") or {}).get("LogGroupName")
            return self.resolve(group) if group is not None else f"/local/{name}"
        return f"{self._names.stack_name}-{name}"

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self._resources.get(logical_id)
        if resource is None:
            raise UnsupportedIntrinsicError(f"!GetAtt {logical_id}.{attribute}: no such resource")
        kind = resource.get("Type", "")
        region, account = self._names.region, self._names.account_id
        if kind == "AWS::DynamoDB::Table":
            table_arn = f"arn:aws:dynamodb:{region}:{account}:table/{self.ref(logical_id)}"
            if attribute == "Arn":
                return table_arn
            if attribute == "StreamArn":
                return f"{table_arn}/stream/local"
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function") and attribute == "Arn":
            return self.function_arn(logical_id)
        if kind == "AWS::Logs::LogGroup" and attribute == "Arn":
            return f"arn:aws:logs:{region}:{account}:log-group:{self.ref(logical_id)}:*"
        if kind == "AWS::SQS::Queue" and attribute in ("Arn", "QueueName"):
            name = template.local_queue_name(logical_id, self._names.stack_name)
            return f"arn:aws:sqs:{region}:{account}:{name}" if attribute == "Arn" else name
        if kind in ("AWS::Serverless::Api", "AWS::ApiGateway::RestApi") and attribute == "RootResourceId":
            return "rootres000"
        if attribute == "Arn":
            return f"arn:aws:local:{region}:{account}:{self.ref(logical_id)}"
        raise UnsupportedIntrinsicError(f"!GetAtt {logical_id}.{attribute} is not supported locally")

    # ---------------------------------------------------------------- intrinsics
    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in ``value``; scalars come back unchanged."""
        if isinstance(value, list):
            return [resolved for resolved in map(self._resolve_item, value) if resolved is not _DROPPED]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, argument), *_ = value.items()
            if name == "Ref":
                return self.ref(str(argument))
            if name == "Fn::GetAtt":
                parts = argument.split(".", 1) if isinstance(argument, str) else list(argument)
                return self.get_att(str(parts[0]), str(self.resolve(parts[1])))
            if name == "Fn::Sub":
                return self._sub(argument)
            if name == "Fn::FindInMap":
                map_name, top, second = (str(self.resolve(part)) for part in argument)
                try:
                    return self._tpl["Mappings"][map_name][top][second]
                except KeyError as exc:
                    raise UnsupportedIntrinsicError(f"!FindInMap {argument}: no such entry") from exc
            if name == "Fn::Join":
                delimiter, items = argument
                return str(delimiter).join(_text(self.resolve(item)) for item in self.resolve(items))
            if name == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if name == "Fn::Split":
                delimiter, text = argument
                return str(self.resolve(text)).split(str(delimiter))
            if name == "Fn::If":
                condition, then, otherwise = argument
                chosen = then if self.condition(str(condition)) else otherwise
                return None if _is_no_value(chosen) else self.resolve(chosen)
            if name == "Fn::Equals":
                left, right = (_text(self.resolve(item)) for item in argument)
                return left == right
            if name == "Fn::Not":
                return not self.resolve(argument[0])
            if name == "Condition":
                return self.condition(str(argument))
            if name.startswith("Fn::"):
                raise UnsupportedIntrinsicError(f"{name} is not supported by the local stack")
        resolved_items = ((key, self._resolve_item(item)) for key, item in value.items())
        return {key: resolved for key, resolved in resolved_items if resolved is not _DROPPED}

    def _resolve_item(self, item: Any) -> Any:
        """An item of a list or map, or ``_DROPPED`` where CloudFormation removes it: ``AWS::NoValue``,
        directly or as the branch an ``!If`` chose."""
        if _is_no_value(item):
            return _DROPPED
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            condition, then, otherwise = item["Fn::If"]
            chosen = then if self.condition(str(condition)) else otherwise
            return _DROPPED if _is_no_value(chosen) else self.resolve(chosen)
        return self.resolve(item)

    def condition(self, name: str) -> bool:
        """A template condition, evaluated with the parameters' values (their defaults locally)."""
        conditions = self._tpl.get("Conditions") or {}
        if name not in conditions:
            raise UnsupportedIntrinsicError(f"condition {name} is not in the template")
        return bool(self.resolve(conditions[name]))

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = (
                str(argument[0]),
                {name: _text(self.resolve(item)) for name, item in dict(argument[1]).items()},
            )
        else:
            text, variables = str(argument), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return variables[name]
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def env_value(self, value: Any) -> str:
        """A resolved env var value as Lambda passes it: always a string."""
        return _text(self.resolve(value))


def _is_no_value(value: Any) -> bool:
    return isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
