"""The rate-tier table: the only place a tier's limits are defined.

The template's ``Mappings.Tiers`` must equal :func:`as_template_mapping` (a unit test checks it), so
the usage plans API Gateway enforces and the limits this library reports never disagree.
Standard library only: the authorizer imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CHAT: Final = "chat"
EVENTS: Final = "events"
USAGE_HISTORY: Final = "usage_history"
MODEL_CHOICE: Final = "model_choice"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    requests_per_minute: int
    burst: int
    requests_per_month: int
    llm_tokens_per_month: int
    features: tuple[str, ...]
    default_model: str  # the Anthropic model a tenant gets unless its config names one (model choice)
    # max_tokens of a streamed chat turn, which the 29 s integration limit does not bind (a JSON
    # turn's is LLM_MAX_TOKENS, sized to answer within it).
    stream_max_tokens: int

    @property
    def rate_per_second(self) -> float:
        """API Gateway throttles per second; a fractional rate is allowed."""
        return self.requests_per_minute / 60

    def has(self, feature: str) -> bool:
        return feature in self.features

    def limits(self) -> dict[str, object]:
        return {
            "requests_per_minute": self.requests_per_minute,
            "burst": self.burst,
            "requests_per_month": self.requests_per_month,
            "llm_tokens_per_month": self.llm_tokens_per_month,
        }


TIERS: Final[dict[str, Tier]] = {
    tier.name: tier
    for tier in (
        Tier("basic", 10, 10, 10_000, 100_000, (CHAT, EVENTS), "claude-haiku-4-5", 2048),
        Tier("pro", 100, 100, 100_000, 1_000_000, (CHAT, EVENTS, USAGE_HISTORY), "claude-sonnet-4-6", 4096),
        Tier(
            "enterprise",
            1000,
            1000,
            1_000_000,
            10_000_000,
            (CHAT, EVENTS, USAGE_HISTORY, MODEL_CHOICE),
            "claude-sonnet-4-6",
            8192,
        ),
    )
}

TIER_NAMES: Final[tuple[str, ...]] = tuple(TIERS)


def get_tier(name: str) -> Tier:
    """Return the tier called ``name``; ``KeyError`` for an unknown one."""
    return TIERS[name]


def as_template_mapping() -> dict[str, dict[str, object]]:
    """The shape of ``Mappings.Tiers`` in template.yaml, for the agreement test."""
    return {
        tier.name: {
            "RateLimit": tier.rate_per_second,
            "BurstLimit": tier.burst,
            "QuotaPerMonth": tier.requests_per_month,
            "TokensPerMonth": tier.llm_tokens_per_month,
            "StreamMaxTokens": tier.stream_max_tokens,
        }
        for tier in TIERS.values()
    }
