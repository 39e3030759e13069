"""API Gateway rules moto 5.2 does not enforce, enforced on its backend (embedded and in process).

``CreateUsagePlanKey`` on AWS answers ``ConflictException`` for a key that is already in that plan,
and for a key already in another plan that covers the same API stage (a key meets one usage plan
per stage). moto adds the key again, silently, so code that crashes on AWS when it retries a tier
change passed every local test. ``DeleteUsagePlanKey`` of a key that is not in the plan answers
``NotFoundException`` on AWS; moto fails with an internal error.

Usage plans of a tenant's own (issue 25): ``UpdateUsagePlan`` takes a fractional
``/throttle/rateLimit`` on AWS (a double; 10 requests a minute is 0.1666…/s), where moto casts it
to an int and fails with an internal error (and keeps ``/quota/limit`` as text). ``DeleteUsagePlan``
of a plan that is gone answers ``NotFoundException`` on AWS (moto: an internal error); of a plan
that still covers an API stage, ``BadRequestException`` (moto deletes it); and a deleted plan's
keys are gone with it.

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
    _install_plan_rules(APIGatewayBackend)
    setattr(APIGatewayBackend, _MARK, True)


_NUMBERS = {"/throttle/rateLimit": float, "/throttle/burstLimit": int, "/quota/limit": int}


def _install_plan_rules(backend_class: Any) -> None:
    from moto.apigateway.exceptions import BadRequestException, NotFoundException  # noqa: PLC0415

    original_update = backend_class.update_usage_plan

    def update_usage_plan(self: Any, usage_plan_id: str, patch_operations: list[dict[str, Any]]) -> Any:
        numbers = [
            op for op in patch_operations if op.get("op") in ("add", "replace") and op["path"] in _NUMBERS
        ]
        others = [op for op in patch_operations if op not in numbers]
        plan = original_update(self, usage_plan_id, others)
        for op in numbers:
            section, _, name = op["path"].strip("/").partition("/")
            getattr(plan, section)[name] = _NUMBERS[op["path"]](op["value"])
        return plan

    def delete_usage_plan(self: Any, usage_plan_id: str) -> None:
        plan = self.usage_plans.get(usage_plan_id)
        if plan is None:
            raise NotFoundException(f"Invalid Usage Plan ID specified: {usage_plan_id}")
        if plan.api_stages:
            raise BadRequestException(f"Cannot delete Usage Plan {usage_plan_id} with associated API stages")
        del self.usage_plans[usage_plan_id]
        self.usage_plan_keys.pop(usage_plan_id, None)

    setattr(backend_class, "update_usage_plan", update_usage_plan)  # noqa: B010 - a patch
    setattr(backend_class, "delete_usage_plan", delete_usage_plan)  # noqa: B010 - a patch
