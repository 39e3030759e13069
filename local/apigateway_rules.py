"""API Gateway rules moto 5.2 does not enforce, enforced on its backend (embedded and in process).

``CreateUsagePlanKey`` on AWS answers ``ConflictException`` for a key that is already in that plan,
and for a key already in another plan that covers the same API stage (a key meets one usage plan
per stage). moto adds the key again, silently, so code that crashes on AWS when it retries a tier
change passed every local test. ``DeleteUsagePlanKey`` of a key that is not in the plan answers
``NotFoundException`` on AWS; moto fails with an internal error.

Locally the template's tier plans carry no API stages (the REST API is the local gateway, not
moto's), and on AWS every tier plan covers the API's one stage: plans without stages are taken to
share it.
"""

from __future__ import annotations

from typing import Any

_MARK = "_tenantry_usage_plan_rules"


def _stages(plan: Any) -> set[tuple[str, str]]:
    return {(str(stage.get("apiId", "")), str(stage.get("stage", ""))) for stage in plan.api_stages or []}


def _share_a_stage(first: Any, second: Any) -> bool:
    mine, theirs = _stages(first), _stages(second)
    return (not mine and not theirs) or bool(mine & theirs)


def install() -> None:
    """Patch moto's API Gateway backend (once per process)."""
    from moto.apigateway.exceptions import ConflictException, NotFoundException  # noqa: PLC0415 - heavy
    from moto.apigateway.models import APIGatewayBackend  # noqa: PLC0415

    if getattr(APIGatewayBackend, _MARK, False):
        return
    original = APIGatewayBackend.create_usage_plan_key

    def create_usage_plan_key(self: Any, usage_plan_id: str, payload: dict[str, Any]) -> Any:
        key_id = payload.get("keyId")
        if key_id in self.usage_plan_keys.get(usage_plan_id, {}):
            raise ConflictException(f"Usage Plan Key {key_id} already exists in usage plan {usage_plan_id}")
        plan = self.usage_plans.get(usage_plan_id)
        for other_id, members in self.usage_plan_keys.items():
            other = self.usage_plans.get(other_id)
            clash = other_id != usage_plan_id and key_id in members and plan is not None and other is not None
            if clash and _share_a_stage(plan, other):
                raise ConflictException(
                    f"API Key {key_id} cannot reference multiple Usage Plans with the same API Stage"
                )
        return original(self, usage_plan_id, payload)

    original_delete = APIGatewayBackend.delete_usage_plan_key

    def delete_usage_plan_key(self: Any, usage_plan_id: str, key_id: str) -> None:
        if key_id not in self.usage_plan_keys.get(usage_plan_id, {}):
            raise NotFoundException(f"Invalid API Key identifier specified: {key_id}")
        original_delete(self, usage_plan_id, key_id)

    setattr(APIGatewayBackend, "delete_usage_plan_key", delete_usage_plan_key)  # noqa: B010 - a patch
    setattr(APIGatewayBackend, "create_usage_plan_key", create_usage_plan_key)  # noqa: B010 - a patch
    setattr(APIGatewayBackend, _MARK, True)
