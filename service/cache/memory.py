"""The in-process tier: an LRU of values bounded in bytes, with expiry."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

# What one entry costs besides its key and value: the dict slot, the tuple, the objects' headers.
ENTRY_OVERHEAD_BYTES = 160


class MemoryCache:
    """Least-recently-used values up to ``capacity_bytes``; expired entries read as misses.

    Everything runs on the event loop, so it needs no lock; each call is a few dict operations.
    """

    name = "memory"

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 1:
            raise ValueError(f"capacity_bytes must be at least 1, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self.size_bytes = 0
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _cost(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD_BYTES

    def _remove(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.size_bytes -= self._cost(key, value)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = time.monotonic()
        found: list[bytes | None] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                found.append(None)
            elif entry[1] <= now:
                self._remove(key)
                found.append(None)
            else:
                self._entries.move_to_end(key)
                found.append(entry[0])
        return found

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        expires = time.monotonic() + ttl_s
        for key, value in items:
            cost = self._cost(key, value)
            if key in self._entries:
                self._remove(key)
            if cost > self.capacity_bytes:
                continue  # larger than the whole tier: never worth evicting everything for
            self._entries[key] = (value, expires)
            self.size_bytes += cost
            while self.size_bytes > self.capacity_bytes:
                self._remove(next(iter(self._entries)))

    async def close(self) -> None:
        self._entries.clear()
        self.size_bytes = 0
