"""Result cache with single-flight, and a hot-asset byte cache: in-process or in Redis."""

from serve_app.cache.base import (
    ByteCache,
    CacheError,
    CacheStats,
    CacheValueError,
    ComputeFactory,
    JsonValue,
    ResultCache,
    dump_value,
    load_value,
)
from serve_app.cache.memory import MemoryByteCache, MemoryResultCache
from serve_app.cache.redis import RedisByteCache, RedisResultCache, redis_client
from serve_app.cache.singleflight import SingleFlight

__all__ = [
    "ByteCache",
    "CacheError",
    "CacheStats",
    "CacheValueError",
    "ComputeFactory",
    "JsonValue",
    "MemoryByteCache",
    "MemoryResultCache",
    "RedisByteCache",
    "RedisResultCache",
    "ResultCache",
    "SingleFlight",
    "dump_value",
    "load_value",
    "redis_client",
]
