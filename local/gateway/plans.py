"""Usage plans at the local gateway: API keys, a token bucket per key, and the plan's quota.

The plans, keys and plan keys are read from the embedded API Gateway service, the same records the
tenants function writes through boto3, so a tier change or a suspension shows up here as it does on
AWS. The view is reloaded lazily after every API Gateway write (the embedded server signals them).
``check_api_key`` is the gateway's step for one request: which key counts, and the 403 or 429
API Gateway answers when the key's plan refuses it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from local.gateway.responses import INVALID_API_KEY, QUOTA_EXCEEDED, THROTTLED, GatewayAnswer

if TYPE_CHECKING:
    from local.gateway.exchange import Exchange

Verdict = Literal["ok", "forbidden", "throttled", "quota_exceeded"]


@dataclass(frozen=True)
class KeyBinding:
    key_id: str
    enabled: bool
    plan_id: str | None
    rate_per_second: float | None
    burst: int | None
    quota_limit: int | None
    quota_period: str  # DAY | WEEK | MONTH


def _quota_window(period: str, now: datetime) -> str:
    if period == "DAY":
        return now.strftime("%Y-%m-%d")
    if period == "WEEK":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week:02d}"
    return now.strftime("%Y-%m")


def load_bindings(apigateway: Any) -> dict[str, KeyBinding]:
    """API key value → its binding (key id, enabled, the plan it is in), from the API Gateway API."""
    plans: dict[str, dict[str, Any]] = {}
    for page in apigateway.get_paginator("get_usage_plans").paginate():
        for plan in page.get("items", []):
            plans[plan["id"]] = plan
    plan_of_key: dict[str, str] = {}
    for known_plan in plans:
        for page in apigateway.get_paginator("get_usage_plan_keys").paginate(usagePlanId=known_plan):
            for plan_key in page.get("items", []):
                plan_of_key[plan_key["id"]] = known_plan
    bindings: dict[str, KeyBinding] = {}
    for page in apigateway.get_paginator("get_api_keys").paginate(includeValues=True):
        for key in page.get("items", []):
            plan_id = plan_of_key.get(key["id"])
            plan = plans.get(plan_id, {}) if plan_id is not None else {}
            throttle = plan.get("throttle") or {}
            quota = plan.get("quota") or {}
            bindings[str(key["value"])] = KeyBinding(
                key_id=str(key["id"]),
                enabled=bool(key.get("enabled")),
                plan_id=plan_id,
                rate_per_second=float(throttle["rateLimit"]) if "rateLimit" in throttle else None,
                burst=int(throttle["burstLimit"]) if "burstLimit" in throttle else None,
                quota_limit=int(quota["limit"]) if "limit" in quota else None,
                quota_period=str(quota.get("period", "MONTH")),
            )
    return bindings


class _Bucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class UsagePlans:
    """Decides, per API key value, whether a request passes its plan's throttle and quota."""

    def __init__(
        self,
        load: Callable[[], dict[str, KeyBinding]],
        *,
        state_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        calendar: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._load = load
        self._clock = clock
        self._calendar = calendar
        self._state_file = state_file
        self._bindings: dict[str, KeyBinding] | None = None
        self._buckets: dict[tuple[str, str | None], _Bucket] = {}
        self._quota_used: dict[str, dict[str, int]] = self._read_state()
        self._lock = threading.Lock()
        self._stale = threading.Event()

    def invalidate(self) -> None:
        """API Gateway's records changed: reload them before the next decision."""
        self._stale.set()

    def _current(self) -> dict[str, KeyBinding]:
        if self._bindings is None or self._stale.is_set():
            self._stale.clear()
            self._bindings = self._load()
        return self._bindings

    @property
    def loaded(self) -> bool:
        """Whether a decision needs no reload of API Gateway's records first."""
        return self._bindings is not None and not self._stale.is_set()

    def binding(self, key_value: str) -> KeyBinding | None:
        with self._lock:
            return self._current().get(key_value)

    def admit(self, key_value: str | None) -> tuple[Verdict, KeyBinding | None]:
        """API Gateway's order: a valid enabled key in a plan, then the throttle, then the quota."""
        if not key_value:
            return "forbidden", None
        with self._lock:
            binding = self._current().get(key_value)
            if binding is None or not binding.enabled or binding.plan_id is None:
                return "forbidden", binding
            now = self._clock()
            if binding.rate_per_second is not None and binding.burst is not None:
                bucket_key = (binding.key_id, binding.plan_id)
                bucket = self._buckets.get(bucket_key)
                if bucket is None or (bucket.rate, bucket.burst) != (binding.rate_per_second, binding.burst):
                    bucket = _Bucket(binding.rate_per_second, binding.burst, now)
                    self._buckets[bucket_key] = bucket
                if not bucket.take(now):
                    return "throttled", binding
            if binding.quota_limit is not None:
                window = _quota_window(binding.quota_period, self._calendar())
                used = self._quota_used.setdefault(binding.key_id, {})
                if used.get(window, 0) >= binding.quota_limit:
                    return "quota_exceeded", binding
                # Only the current window is worth keeping.
                for old in [name for name in used if name != window]:
                    del used[old]
                used[window] = used.get(window, 0) + 1
            return "ok", binding

    def _read_state(self) -> dict[str, dict[str, int]]:
        if self._state_file is None:
            return {}
        try:
            raw = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        return {
            str(key_id): {str(window): int(count) for window, count in windows.items()}
            for key_id, windows in raw.items()
            if isinstance(windows, dict)
        }

    def save(self) -> None:
        """Keep the quota counters across restarts, as API Gateway does."""
        if self._state_file is None:
            return
        with self._lock:
            text = json.dumps(self._quota_used)
        partial = self._state_file.with_suffix(".tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(self._state_file)


def check_api_key(
    plans: UsagePlans, exchange: Exchange, *, api_key_source: str, headers: dict[str, str]
) -> GatewayAnswer | None:
    """The request's API key against its usage plan: the authorizer's ``usageIdentifierKey``
    (``ApiKeySourceType: AUTHORIZER``) or the X-API-Key header. None when admitted; the key and
    its id are kept on ``exchange`` for the event and the access log either way."""
    if api_key_source == "AUTHORIZER":
        key = exchange.authorizer.usage_identifier_key if exchange.authorizer is not None else None
    else:
        key = headers.get("x-api-key")
    verdict, binding = plans.admit(key)
    exchange.api_key = key
    exchange.api_key_id = binding.key_id if binding is not None else None
    if verdict == "forbidden":
        return INVALID_API_KEY
    if verdict == "throttled":
        return THROTTLED
    if verdict == "quota_exceeded":
        return QUOTA_EXCEEDED
    return None
