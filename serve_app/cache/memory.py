"""In-process caches (the default on one machine)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from serve_app.cache.base import CacheStats, ComputeFactory, JsonValue, dump_value, load_value
from serve_app.cache.singleflight import SingleFlight
from serve_app.observability.metrics import metrics

__all__ = ["MemoryByteCache", "MemoryResultCache"]


class MemoryResultCache:
    """Result cache in a dict, least recently used entries evicted beyond ``max_entries``.

    Values are stored as JSON text, so callers get copies and the memory and Redis backends accept and
    return exactly the same values.

    Args:
        max_entries: Most entries held.
        clock: Monotonic seconds, for expiry; tests pass a fake.
    """

    def __init__(self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float | None, str]] = OrderedDict()
        self._flight: SingleFlight[str] = SingleFlight()
        self._stats = CacheStats()

    def waiting(self, key: str) -> int:
        """Callers in this process waiting for the computation of ``key`` now (0 when none runs)."""
        return self._flight.waiters(key)

    @property
    def stats(self) -> CacheStats:
        """Hit and miss counters."""
        return self._stats

    def _lookup(self, key: str) -> JsonValue | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, text = entry
        if expires is not None and self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return load_value(text)

    async def get(self, key: str) -> JsonValue | None:
        """Return the cached value, or ``None``."""
        value = self._lookup(key)
        if value is None:
            self._stats.misses += 1
            metrics().cache_lookup("result", "miss")
        else:
            self._stats.hits += 1
            metrics().cache_lookup("result", "hit")
        return value

    async def set(self, key: str, value: JsonValue, *, ttl_s: float | None = None) -> None:
        """Cache ``value``.

        Raises:
            CacheValueError: ``value`` is ``None`` or not JSON.
        """
        text = dump_value(value)
        expires = None if ttl_s is None else self._clock() + ttl_s
        self._entries[key] = (expires, text)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
            self._stats.evictions += 1

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._entries.pop(key, None)

    async def get_or_compute(self, key: str, factory: ComputeFactory, *, ttl_s: float | None = None) -> JsonValue:
        """Return the cached value, or run ``factory`` once for all concurrent callers and cache it.

        The computation stops (is cancelled) when the last caller waiting for it is cancelled.

        Raises:
            Exception: Whatever ``factory`` raised (to every caller sharing the computation).
            CacheValueError: ``factory`` returned something that cannot be cached.
        """
        value = self._lookup(key)
        if value is not None:
            self._stats.hits += 1
            metrics().cache_lookup("result", "hit")
            return value

        async def compute() -> str:
            result = await factory()
            await self.set(key, result, ttl_s=ttl_s)
            return dump_value(result)

        # The flight hands out JSON text, so each caller gets its own copy of the value.
        text, shared = await self._flight.run(key, compute)
        if shared:
            self._stats.coalesced += 1
            metrics().cache_lookup("result", "coalesced")
        else:
            self._stats.misses += 1
            metrics().cache_lookup("result", "miss")
        return load_value(text)

    async def aclose(self) -> None:
        """Drop every entry."""
        self._entries.clear()


class MemoryByteCache:
    """Hot asset bytes within ``max_bytes``, least recently used evicted first.

    Args:
        max_bytes: The budget.
        max_item_bytes: Larger items are not cached (default: a quarter of the budget, so one huge asset
            cannot flush everything else).
    """

    def __init__(self, *, max_bytes: int, max_item_bytes: int | None = None) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self._max_bytes = max_bytes
        self._max_item = max_item_bytes if max_item_bytes is not None else max(1, max_bytes // 4)
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._total = 0
        self._stats = CacheStats()

    @property
    def stats(self) -> CacheStats:
        """Hit, miss and eviction counters."""
        return self._stats

    @property
    def max_bytes(self) -> int:
        """The budget."""
        return self._max_bytes

    async def get(self, key: str) -> bytes | None:
        """Return the bytes, or ``None``."""
        data = self._entries.get(key)
        if data is None:
            self._stats.misses += 1
            metrics().cache_lookup("asset", "miss")
            return None
        self._entries.move_to_end(key)
        self._stats.hits += 1
        metrics().cache_lookup("asset", "hit")
        return data

    async def set(self, key: str, data: bytes) -> bool:
        """Cache ``data``; return ``False`` if it is larger than the item limit."""
        if len(data) > self._max_item or len(data) > self._max_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self._total -= len(old)
        self._entries[key] = bytes(data)
        self._total += len(data)
        while self._total > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._total -= len(evicted)
            self._stats.evictions += 1
        return True

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._total -= len(old)

    async def total_bytes(self) -> int:
        """Bytes held now."""
        return self._total

    async def aclose(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._total = 0
