"""Caches: the result cache (request hash → result) with single-flight, and the hot-asset byte cache.

The **result cache** maps a canonical request hash (seeded requests only: an unseeded request is a new
image every time) to a small JSON result, such as ``{"image_id": ..., "sha256": ..., "format": "png"}``.
:meth:`ResultCache.get_or_compute` coalesces identical requests in flight: concurrent callers with the same
key share one computation; a failure is not cached, so the next call computes again. The computation lives
as long as someone waits for it: cancelling one caller leaves it running for the others, cancelling the last
one cancels it.

The **byte cache** keeps hot asset bytes within a byte budget, evicting the least recently used.

Both count hits and misses for the metrics.

Exceptions::

    CacheError
    └── CacheValueError   a value the cache cannot hold (not JSON, or None) (also a ValueError)

Backends: :mod:`serve_app.cache.memory` (one process) and :mod:`serve_app.cache.redis` (shared between
replicas; single-flight across processes through a lock).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "ByteCache",
    "CacheError",
    "CacheStats",
    "CacheValueError",
    "ComputeFactory",
    "JsonValue",
    "ResultCache",
    "dump_value",
    "load_value",
]

#: A JSON-serialisable value (``None`` is not allowed as a cached value: it means "missing").
JsonValue = Any
#: Makes the value for a key on a miss.
ComputeFactory = Callable[[], Awaitable[JsonValue]]


class CacheError(Exception):
    """Base class for cache failures."""


class CacheValueError(CacheError, ValueError):
    """The value cannot be cached."""


@dataclass(slots=True)
class CacheStats:
    """Counters since the cache was created (per process).

    Attributes:
        hits: Lookups answered from the cache.
        misses: Lookups that found nothing (for ``get_or_compute``: computations this caller ran).
        coalesced: ``get_or_compute`` callers that shared another caller's computation.
        evictions: Entries dropped to stay within the size bound (byte cache, memory result cache).
    """

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    evictions: int = 0

    @property
    def lookups(self) -> int:
        """All lookups counted."""
        return self.hits + self.misses + self.coalesced

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before any lookup)."""
        return self.hits / self.lookups if self.lookups else 0.0

    def as_dict(self) -> dict[str, float]:
        """The counters, the lookups and the hit rate as plain JSON-able data."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "coalesced": self.coalesced,
            "evictions": self.evictions,
            "lookups": self.lookups,
            "hit_rate": round(self.hit_rate, 6),
        }


def dump_value(value: JsonValue) -> str:
    """Serialise a value for the cache.

    Raises:
        CacheValueError: ``value`` is ``None`` or not JSON-serialisable.
    """
    if value is None:
        raise CacheValueError("None cannot be cached: it means 'missing'")
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CacheValueError(f"value is not JSON-serialisable: {exc}") from exc


def load_value(text: str | bytes) -> JsonValue:
    """Parse what :func:`dump_value` wrote."""
    return json.loads(text)


@runtime_checkable
class ResultCache(Protocol):
    """Request hash → JSON result, with single-flight computation."""

    @property
    def stats(self) -> CacheStats:
        """Hit and miss counters."""
        ...

    async def get(self, key: str) -> JsonValue | None:
        """Return the cached value, or ``None``; counts a hit or a miss."""
        ...

    async def set(self, key: str, value: JsonValue, *, ttl_s: float | None = None) -> None:
        """Cache ``value`` under ``key``, for ``ttl_s`` seconds or until evicted."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        ...

    async def get_or_compute(self, key: str, factory: ComputeFactory, *, ttl_s: float | None = None) -> JsonValue:
        """Return the cached value, or compute it once for all concurrent callers and cache it."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ByteCache(Protocol):
    """Hot asset bytes within a byte budget (least recently used evicted first)."""

    @property
    def stats(self) -> CacheStats:
        """Hit, miss and eviction counters."""
        ...

    @property
    def max_bytes(self) -> int:
        """The budget."""
        ...

    async def get(self, key: str) -> bytes | None:
        """Return the bytes, or ``None``; counts a hit or a miss and marks the entry recently used."""
        ...

    async def set(self, key: str, data: bytes) -> bool:
        """Cache ``data``; return ``False`` (and cache nothing) if it alone exceeds the item limit."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        ...

    async def total_bytes(self) -> int:
        """Bytes held now."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
