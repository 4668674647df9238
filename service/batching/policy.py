"""How the next batch is formed: fill to the limits, or choose its shape by measured cost.

The batcher owns the queue and asks its policy, whenever a slot is free, which entries to
dispatch now or how long to wait before asking again. Two policies, one interface:

``FillPolicy`` dispatches as soon as a limit fills a batch (size or padded tokens) or the oldest
item has waited ``max_queue_delay_ms`` (or the batcher is stopping): everything queued by then
goes, grouped by length (see ``selection``).

``CostPolicy`` chooses from a cost table measured on the engine (see ``cost``). The candidates
are the prefixes of the queue's selection: it starts from the oldest item and grows through items
of the closest lengths, so every candidate carries the oldest item and no item starves. Each
candidate is scored by its gain: the predicted seconds its texts would take as batches of one,
over the predicted seconds of the batch. For texts of one length that is texts per second, up to
a constant; unlike texts per second it also charges padding, so a short text padded to a long
one's length only joins when the batch's fixed cost, shared, pays for its padding. The prefix
with the best gain goes (ties to the larger): small batches when batching does not pay, long
items left for a batch of their own when the cost grows with padded tokens.

Waiting only pays when a fuller batch would gain markedly more. A plan is ready to dispatch at
once when a limit stopped the selection, when no more arrivals are expected before the wait must
end (judged from the recent arrival rate), or when the best reachable batch at the same padded
length (its size bounded by the expected arrivals and the limits) would not beat the candidate's
gain by more than ``worth_waiting``. The wait lasts at most ``max_queue_delay_ms``, and at most
half of a queued item's time to its deadline less the batch's predicted run, so the batch can
still finish in time. The size and token limits stay hard limits.

Pure computation: no asyncio, no clocks; the batcher passes times in.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol

from service.batching.costs import CostTable
from service.batching.selection import EntryT, LengthBucketQueue, QueuedItem, Selection
from service.config import BatchingConfig

WORTH_WAITING = 0.05
"""Waiting for a fuller batch must promise at least this much more gain (5 %)."""

_ARRIVALS_REMEMBERED = 64
"""Calls over which the arrival rate is measured."""

DEADLINE_SHARE = 0.5
"""With a cost model, the share of an item's time to its deadline it may wait for company."""


class BatchPolicy(Protocol):
    """What a batcher asks of its policy; ``queue`` is never empty when it asks."""

    def note_arrival(self, count: int, now: float) -> None:
        """``count`` items arrived in one call at ``now``."""

    def next_batch(
        self, queue: LengthBucketQueue[EntryT], now: float, closing: bool
    ) -> list[EntryT] | float:
        """The entries to dispatch now (oldest first, not yet taken from the queue), or the
        seconds to wait before asking again (an arrival or a finished batch asks sooner)."""
        ...

    def predict(self, batch_size: int, padded_length: int) -> float | None:
        """Predicted seconds of a batch of this shape; None without a cost model."""
        ...


class FillPolicy:
    """Batches fill to the limits or leave when their oldest item has waited its delay."""

    def __init__(self, config: BatchingConfig) -> None:
        self._max_batch_size = config.max_batch_size
        self._max_batch_tokens = config.max_batch_tokens
        self._max_delay_s = config.max_queue_delay_ms / 1000.0

    def note_arrival(self, count: int, now: float) -> None:
        """Arrivals do not matter: a batch leaves when full or when its delay is up."""

    def next_batch(
        self, queue: LengthBucketQueue[EntryT], now: float, closing: bool
    ) -> list[EntryT] | float:
        oldest = queue.oldest()
        assert oldest is not None, "asked with an empty queue"
        wait_s = oldest.enqueued_at + self._max_delay_s - now
        if wait_s > 0 and not closing:
            full = self._full_selection(queue)
            return wait_s if full is None else full.entries
        return queue.select(self._max_batch_size, self._max_batch_tokens).entries

    def predict(self, batch_size: int, padded_length: int) -> float | None:
        return None

    def _full_selection(self, queue: LengthBucketQueue[EntryT]) -> Selection[EntryT] | None:
        """The next batch if the queue already fills one, else None."""
        size, tokens = self._max_batch_size, self._max_batch_tokens
        if len(queue) < size and len(queue) * queue.longest <= tokens:
            return None  # everything queued fits in one batch, so no limit can be reached yet
        selection = queue.select(size, tokens)
        return selection if selection.full else None


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


class CostPolicy:
    """Plans batches for one batcher from its cost table and its limits."""

    def __init__(
        self, table: CostTable, config: BatchingConfig, worth_waiting: float = WORTH_WAITING
    ) -> None:
        self.table = table
        self._max_batch_size = config.max_batch_size
        self._max_batch_tokens = config.max_batch_tokens
        self._max_delay_s = config.max_queue_delay_ms / 1000.0
        self._worth_waiting = worth_waiting
        self._arrivals = ArrivalRate()
        self._alone_cache: dict[int, float] = {}

    def note_arrival(self, count: int, now: float) -> None:
        """Feeds the arrival rate that says whether a fuller batch is coming."""
        self._arrivals.note(count, now)

    def next_batch(
        self, queue: LengthBucketQueue[EntryT], now: float, closing: bool
    ) -> list[EntryT] | float:
        oldest = queue.oldest()
        assert oldest is not None, "asked with an empty queue"
        selection = queue.select(self._max_batch_size, self._max_batch_tokens)
        wait_s = 0.0 if closing else oldest.enqueued_at + self._max_delay_s - now
        wait_s = min(wait_s, self._deadline_wait_limit(selection.entries, now))
        plan = self.plan(selection, now, wait_s)
        return plan.entries if plan.ready else wait_s

    def predict(self, batch_size: int, padded_length: int) -> float | None:
        return self.table.predict(batch_size, padded_length)

    def _deadline_wait_limit(self, entries: Sequence[QueuedItem], now: float) -> float:
        """Seconds the items' deadlines still allow waiting for company (inf: no deadline).

        Each item may spend on it ``DEADLINE_SHARE`` of the time it had until its deadline,
        less the predicted run of the slowest batch these items could form; the rest is left for
        the run and for a busy event loop that wakes late.
        """
        limit = math.inf
        slowest_s: float | None = None
        for entry in entries:
            if entry.deadline is None:
                continue
            if slowest_s is None:
                longest = max(other.length for other in entries)
                slowest_s = self.table.predict(len(entries), longest)
            share = DEADLINE_SHARE * (entry.deadline - entry.enqueued_at - slowest_s)
            limit = min(limit, entry.enqueued_at + share - now)
        return limit

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


def policy_for(config: BatchingConfig, table: CostTable | None) -> FillPolicy | CostPolicy:
    """The cost policy when a table was measured, else filling to the limits."""
    return FillPolicy(config) if table is None else CostPolicy(table, config)
