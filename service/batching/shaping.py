"""Choosing the next batch's shape, and whether to wait for it, from a measured cost table.

The candidates are the prefixes of the queue's selection (see ``selection``): it starts from the
oldest item and grows through items of the closest lengths, so every candidate carries the oldest
item and no item starves. Each candidate is scored by its gain: the predicted seconds its texts
would take as batches of one, over the predicted seconds of the batch. For texts of one length
that is texts per second, up to a constant; unlike texts per second it also charges padding, so a
short text padded to a long one's length only joins when the batch's fixed cost, shared, pays for
its padding. The prefix with the best gain goes (ties to the larger): small batches when batching
does not pay, long items left for a batch of their own when the cost grows with padded tokens.

Waiting only pays when a fuller batch would gain markedly more. A plan is ready to dispatch at
once when a limit stopped the selection, when no more arrivals are expected before the wait must
end (judged from the recent arrival rate), or when the best reachable batch at the same padded
length (its size bounded by the expected arrivals and the limits) would not beat the candidate's
gain by more than ``worth_waiting``. How long waiting may last (the queue delay, the deadlines) is
the caller's business.

Pure computation: no asyncio, no clocks; the owner passes times in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic

from service.batching.cost import CostTable
from service.batching.selection import EntryT, Selection

WORTH_WAITING = 0.05
"""Waiting for a fuller batch must promise at least this much more gain (5 %)."""

_ARRIVALS_REMEMBERED = 64
"""Calls over which the arrival rate is measured."""


class ArrivalRate:
    """Items per second over the last few calls; it decays while nothing arrives."""

    def __init__(self, remembered: int = _ARRIVALS_REMEMBERED) -> None:
        self._arrivals: deque[tuple[float, int]] = deque(maxlen=max(2, remembered))
        self._counted = 0
        """Items of every remembered call but the first (the first only opens the window)."""

    def note(self, count: int, now: float) -> None:
        """``count`` items arrived (in one call) at ``now``."""
        arrivals = self._arrivals
        if len(arrivals) == arrivals.maxlen:
            arrivals.popleft()
            self._counted -= arrivals[0][1]
        if arrivals:
            self._counted += count
        arrivals.append((now, count))

    def per_second(self, now: float) -> float:
        """Items that arrived after the first remembered call, per second since it."""
        if not self._arrivals:
            return 0.0
        span = now - self._arrivals[0][0]
        return self._counted / span if span > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Plan(Generic[EntryT]):
    """The batch to dispatch next, oldest item first, and whether to dispatch it now."""

    entries: list[EntryT]
    padded_length: int
    predicted_s: float
    ready: bool
    """Waiting for more arrivals is not expected to pay."""


class CostShaper:
    """Plans batches for one batcher from its cost table and its limits."""

    def __init__(
        self,
        table: CostTable,
        max_batch_size: int,
        max_batch_tokens: int,
        worth_waiting: float = WORTH_WAITING,
    ) -> None:
        self.table = table
        self._max_batch_size = max_batch_size
        self._max_batch_tokens = max_batch_tokens
        self._worth_waiting = worth_waiting
        self._arrivals = ArrivalRate()
        self._alone_cache: dict[int, float] = {}

    def note_arrival(self, count: int, now: float) -> None:
        """Feeds the arrival rate that says whether a fuller batch is coming."""
        self._arrivals.note(count, now)

    def plan(self, selection: Selection[EntryT], now: float, wait_left_s: float) -> Plan[EntryT]:
        """The best prefix of ``selection``; ready unless waiting ``wait_left_s`` would pay."""
        entries = selection.entries
        best_size, best_length, best_gain, best_alone_s = 0, 0, -1.0, 0.0
        longest, alone_s = 0, 0.0
        for size, entry in enumerate(entries, start=1):
            longest = max(longest, entry.length)
            alone_s += self._alone_s(entry.length)
            gain = alone_s / self.table.predict(size, longest)
            if gain >= best_gain:
                best_size, best_length, best_gain, best_alone_s = size, longest, gain, alone_s
        predicted_s = self.table.predict(best_size, best_length) if best_size else 0.0
        ready = (
            selection.full
            or wait_left_s <= 0
            or best_gain
            >= (1 - self._worth_waiting)
            * self._reachable_gain(best_size, best_length, best_alone_s, now, wait_left_s)
        )
        return Plan(entries[:best_size], best_length, predicted_s, ready)

    def _alone_s(self, length: int) -> float:
        """Predicted seconds of a batch of one text of ``length`` tokens."""
        seconds = self._alone_cache.get(length)
        if seconds is None:
            seconds = self._alone_cache[length] = self.table.predict(1, length)
        return seconds

    def _reachable_gain(
        self, size: int, length: int, alone_s: float, now: float, wait_left_s: float
    ) -> float:
        """Best gain of a fuller batch that can form in time (newcomers ``length`` long), or 0."""
        expected = int(self._arrivals.per_second(now) * wait_left_s)
        largest = min(
            size + expected, self._max_batch_size, self._max_batch_tokens // max(length, 1)
        )
        if largest <= size:
            return 0.0
        newcomer_s = self._alone_s(length)
        sizes = [b for b in self.table.batch_sizes if size < b < largest] + [largest]
        return max(
            (alone_s + (b - size) * newcomer_s) / self.table.predict(b, length) for b in sizes
        )
