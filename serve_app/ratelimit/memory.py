"""In-process rate limits (the default on one machine, and for tests).

State lives in one dict per process: replicas do not share quotas (use :mod:`serve_app.ratelimit.redis`
for that). A hit does no ``await``, so it is atomic within the event loop.

The dict stays bounded two ways: keys whose buckets are all full again are dropped (a few of the least
recently used are checked on every call, so idle keys go), and beyond ``max_keys`` the least recently used
key is evicted. An evicted key forgets its debt, i.e. gets a full bucket back: the cap trades exactness for
memory under a flood of distinct keys, so size it above the number of keys active within one window.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from serve_app.ratelimit.base import Decision, Rate, check_cost, gcra, to_decision

__all__ = ["MemoryRateLimiter"]

# Least recently used keys checked for being full again on each call (amortised clean-up of idle keys).
_SWEEP = 4


@dataclass(slots=True)
class _Key:
    # bucket id -> (debt, at_ms); the key can be dropped once every bucket has drained (at expires_ms).
    buckets: dict[str, tuple[int, int]] = field(default_factory=dict)
    expires_ms: int = 0


class MemoryRateLimiter:
    """GCRA buckets in a dict, least recently used keys evicted beyond ``max_keys``.

    Args:
        max_keys: Most keys held.
        clock: Monotonic seconds; tests pass a fake to control time.
    """

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        self._max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._evictions = 0

    def __len__(self) -> int:
        """Keys held now."""
        return len(self._keys)

    @property
    def evictions(self) -> int:
        """Keys dropped by the ``max_keys`` cap (since creation)."""
        return self._evictions

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)

    def _sweep(self, now: int) -> None:
        for _ in range(_SWEEP):
            if not self._keys:
                return
            oldest = next(iter(self._keys))
            if self._keys[oldest].expires_ms > now:
                return
            del self._keys[oldest]

    def _debt(self, entry: _Key | None, rate: Rate, now: int) -> int:
        if entry is None:
            return 0
        state = entry.buckets.get(rate.bucket_id)
        if state is None:
            return 0
        debt, at = state
        elapsed = min(max(0, now - at), rate.window_ms)
        return max(0, debt - elapsed * rate.limit)

    async def hit(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Consume ``cost`` units of ``key``'s ``rate``, or refuse, consuming nothing.

        Raises:
            ValueError: ``cost`` is not an int >= 1.
        """
        check_cost(cost)
        now = self._now_ms()
        self._sweep(now)
        entry = self._keys.get(key)
        allowed, remaining, debt, retry = gcra(self._debt(entry, rate, now), rate, cost)
        if allowed:
            if entry is None:
                entry = self._keys[key] = _Key()
            entry.buckets[rate.bucket_id] = (debt, now)
            # Drained after debt / limit ms (rounded up).
            entry.expires_ms = max(entry.expires_ms, now - (-debt // rate.limit))
        if entry is not None:
            self._keys.move_to_end(key)
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
            self._evictions += 1
        return to_decision(rate, allowed, remaining, debt, retry)

    async def peek(self, key: str, rate: Rate) -> Decision:
        """The state of ``key``'s ``rate`` without consuming (``allowed``: one unit is available now)."""
        now = self._now_ms()
        allowed, remaining, debt, retry = gcra(self._debt(self._keys.get(key), rate, now), rate, 0)
        return to_decision(rate, allowed, remaining, debt, retry)

    async def reset(self, key: str) -> None:
        """Forget ``key``."""
        self._keys.pop(key, None)

    async def close(self) -> None:
        """Drop every key."""
        self._keys.clear()
