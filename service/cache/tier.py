"""The protocol every cache tier implements: batched reads and writes of opaque values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class CacheTier(Protocol):
    """A key-value store for cached results.

    Both methods take a whole batch, so a remote tier makes one round trip per request, never
    one per text. A tier never raises: a fault reads as no answer and a lost write.
    """

    name: str

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        """The value of each key (``None`` where it has none), or ``None`` for the whole batch
        when the tier could not answer (a fault, or its circuit is open)."""
        ...

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        """Store each ``(key, value)``, expiring after ``ttl_s`` seconds."""
        ...

    async def close(self) -> None: ...
