"""An in-memory :class:`tenantry.stores.usage.UsageReader` and ``UsageWriter``, for tests of the
usage and metering logic where DynamoDB is not the point (the DynamoDB one is tested against moto
and the embedded server)."""

from __future__ import annotations

from collections.abc import Sequence

from tenantry.stores.usage import CounterAdditions, PeriodCounters


class InMemoryUsage:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], dict[str, int]] = {}
        self._batches: dict[str, int] = {}  # applied batch → its marker's expiry

    def add(self, tenant_id: str, period: str, **counters: int) -> None:
        item = self._items.setdefault((tenant_id, period), {})
        for name, amount in counters.items():
            item[name] = item.get(name, 0) + amount

    def add_once(self, batch: str, additions: Sequence[CounterAdditions], expires_at: int) -> bool:
        if batch in self._batches:
            return False
        self._batches[batch] = expires_at
        for added in additions:
            self.add(added.tenant_id, added.period, **added.counters)
        return True

    def get_period(self, tenant_id: str, period: str) -> PeriodCounters:
        return PeriodCounters(tenant_id, period, dict(self._items.get((tenant_id, period), {})))

    def get_periods(self, tenant_ids: Sequence[str], period: str) -> dict[str, PeriodCounters]:
        return {
            tenant_id: self.get_period(tenant_id, period)
            for tenant_id in tenant_ids
            if (tenant_id, period) in self._items
        }

    def get_range(self, tenant_id: str, first: str, last: str) -> list[PeriodCounters]:
        return [
            self.get_period(owner, period)
            for owner, period in sorted(self._items)
            if owner == tenant_id and first <= period <= last
        ]
