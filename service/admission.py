"""The one admission rule: what one request may ask, and how many texts may be in flight.

Every method of the API passes through here before any tokenizing, cache read or model work, so a
refusal is cheap and the drain at shutdown sees every call in progress. A request's size is
checked against ``max_texts_per_request`` and ``max_text_chars``; its texts are then held against
its model's in-flight limit (all versions and operations together) until it is answered, however
it ends. A stream's messages share a budget of half that limit, so they never refuse each other.
The rule itself, ``service.errors.refuse_beyond``, also bounds a batcher's own queue.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from types import MappingProxyType

from service.errors import InvalidArgument, refuse_beyond


@dataclass(frozen=True)
class RequestLimits:
    """What one request, and all requests to one model together, may ask (see ``Settings``)."""

    max_texts_per_request: int
    max_text_chars: int
    max_inflight_texts: int
    """Texts of one model (all versions) between admission and reply."""


class Admission:
    """Request sizes and texts in flight per model; one per server, on one event loop (the
    counters need no lock)."""

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self._inflight: Counter[str] = Counter()
        self.inflight: Mapping[str, int] = MappingProxyType(self._inflight)
        """Per model, the texts admitted and not yet answered (0 for any other name)."""

    @property
    def busy(self) -> bool:
        """Some request is admitted and not yet answered."""
        return any(self._inflight.values())

    def check_count(self, count: int, what: str = "texts") -> None:
        """At most ``max_texts_per_request`` of ``what`` in one request."""
        limit = self.limits.max_texts_per_request
        if count > limit:
            raise InvalidArgument(
                f"{count} {what} in one request; the limit is {limit}, split the request"
            )

    def check_texts(self, texts: Sequence[str]) -> None:
        """A request's texts: how many, and how long each."""
        if not texts:
            raise InvalidArgument("texts is empty; send at least one text")
        self.check_count(len(texts))
        chars = self.limits.max_text_chars
        for index, text in enumerate(texts):
            if len(text) > chars:
                raise InvalidArgument(
                    f"text {index} has {len(text)} characters; the limit is {chars} "
                    "(max-text-chars), shorten or split it"
                )

    @contextmanager
    def hold(self, model: str, count: int, unit: str = "texts") -> Iterator[None]:
        """Holds ``count`` of the model's in-flight texts (a similarity query counts its
        words, named ``unit``) while the request runs, or refuses it at once; released however
        the request ends (result, error, cancellation)."""
        held = self._inflight[model]
        limit = self.limits.max_inflight_texts
        refuse_beyond(count, held, limit, f"{model}'s queue", "max-inflight-texts", unit)
        self._inflight[model] = held + count
        try:
            yield
        finally:
            self._inflight[model] -= count

    def stream_budget(self) -> TextBudget:
        """The texts one stream may have in flight at once: half of a model's limit, so a
        stream is refused only when other callers fill the model, as a unary caller would be."""
        return TextBudget(self.limits.max_inflight_texts // 2)


class TextBudget:
    """The texts one stream may have in flight at once, so that its own messages never take
    all of a model's admission limit and refuse each other: a message waits until the texts
    of its stream's earlier ones leave room (or, larger than the budget itself, until it is
    the only one)."""

    def __init__(self, texts: int) -> None:
        self.texts = max(1, texts)
        self.held = 0
        self._freed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, count: int) -> AsyncIterator[None]:
        async with self._freed:
            await self._freed.wait_for(lambda: self.held == 0 or self.held + count <= self.texts)
            self.held += count
        try:
            yield
        finally:
            async with self._freed:
                self.held -= count
                self._freed.notify_all()
