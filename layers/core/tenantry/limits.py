"""A tenant's effective limits: its tier's values, each overridden by the operator or not.

The tier table (tenantry.tiers) gives every tenant of a tier the same limits; ``PATCH
/tenants/{id}`` with ``limits`` overrides any of them for one tenant (design §3). The overrides are
stored on the tenant's item; this module is the one place that turns tier and overrides into what
is enforced and shown:

- the edge limits (requests per minute, burst, requests per month) are API Gateway's: a tenant
  with any of them overridden has a usage plan of its own (tenantry.edge), with the overridden
  values and its tier's for the rest;
- the monthly LLM token budget is the chat function's (tenantry.chat), read from the same item on
  every turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from tenantry.edge import PlanLimits
from tenantry.models.tenants import Limits, LimitSources
from tenantry.tiers import Tier, get_tier

LimitName = Literal["requests_per_minute", "burst", "requests_per_month", "tokens_per_month"]
LIMIT_NAMES: Final[tuple[LimitName, ...]] = (
    "requests_per_minute",
    "burst",
    "requests_per_month",
    "tokens_per_month",
)
# Enforced by API Gateway's usage plans; tokens_per_month by the chat function.
EDGE_LIMITS: Final[frozenset[str]] = frozenset({"requests_per_minute", "burst", "requests_per_month"})


def tier_value(tier: Tier, name: str) -> int:
    values = {
        "requests_per_minute": tier.requests_per_minute,
        "burst": tier.burst,
        "requests_per_month": tier.requests_per_month,
        "tokens_per_month": tier.llm_tokens_per_month,
    }
    return values[name]


def effective(tier_name: str, overrides: Mapping[str, int]) -> dict[str, int]:
    """Each limit's value: the override when there is one, else the tier's."""
    tier = get_tier(tier_name)
    return {name: overrides.get(name, tier_value(tier, name)) for name in LIMIT_NAMES}


def merged(current: Mapping[str, int], changes: Mapping[str, int | None]) -> dict[str, int]:
    """The overrides after a PATCH's ``limits``: each given value replaces the override, ``None``
    removes it (the tier's value applies again); a limit not given keeps its override."""
    result: dict[str, int] = {name: value for name, value in current.items() if name in LIMIT_NAMES}
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def has_edge_overrides(overrides: Mapping[str, int]) -> bool:
    return any(name in EDGE_LIMITS for name in overrides)


def plan_limits(tier_name: str, overrides: Mapping[str, int]) -> PlanLimits | None:
    """What the tenant's own usage plan enforces; None when no edge limit is overridden (the tier's
    plan serves it)."""
    if not has_edge_overrides(overrides):
        return None
    values = effective(tier_name, overrides)
    return PlanLimits(
        rate_per_second=values["requests_per_minute"] / 60,
        burst=values["burst"],
        quota_per_month=values["requests_per_month"],
    )


def view(tier_name: str, overrides: Mapping[str, int]) -> tuple[Limits, LimitSources]:
    """The effective limits as the API shows them, and where each comes from."""
    values = effective(tier_name, overrides)
    sources: dict[str, Literal["tier", "override"]] = {
        name: "override" if name in overrides else "tier" for name in LIMIT_NAMES
    }
    return (
        Limits(**values, llm_tokens_per_month=values["tokens_per_month"]),
        LimitSources(**sources),
    )
