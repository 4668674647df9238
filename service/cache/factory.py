"""Builds the configured cache tiers from the server's settings."""

from __future__ import annotations

from dataclasses import dataclass

from service.cache.memory import MemoryCache
from service.cache.redis_tier import RedisCache, connect
from service.cache.texts import CacheObserver, TextCache


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool = True
    memory_bytes: int = 256 * 2**20
    """0: no in-process tier."""
    redis_url: str = ""
    """Empty: no Redis tier."""
    redis_cluster: bool = False
    ttl_s: int = 86_400
    redis_timeout_s: float = 0.05


def create_cache(config: CacheConfig, observer: CacheObserver | None = None) -> TextCache | None:
    """The configured tiers, or None when caching is off or no tier is left."""
    if not config.enabled:
        return None
    memory = MemoryCache(config.memory_bytes) if config.memory_bytes > 0 else None
    redis = None
    if config.redis_url:
        client = connect(config.redis_url, config.redis_cluster, config.redis_timeout_s)
        redis = RedisCache(client, timeout_s=config.redis_timeout_s, where=config.redis_url)
    if memory is None and redis is None:
        return None
    return TextCache(memory, redis, config.ttl_s, observer)
