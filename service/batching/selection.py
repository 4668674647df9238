"""The queue of items waiting to be batched, and the choice of the next batch.

Waiting items are indexed twice: in arrival order (to find the oldest) and in one FIFO bucket
per token length (to find items of similar length). Items leave lazily: an item that is taken or
dropped is only marked as no longer waiting and is unlinked when it reaches the front of a deque.

The next batch always starts from the oldest waiting item, so nothing starves, and grows outward
through the length buckets, each step taking the item whose length is closest to the oldest one's
(ties go to the older item), while the batch stays within its size and padded-token limits.
Padded tokens are ``len(batch) * max(length)``. An item longer than the token limit on its own is
still selected, alone, once it is the oldest: limiting input lengths is the caller's job.

Pure data structure: no asyncio, no clocks; the owner passes times in.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# Dropped items may linger in the middle of a length bucket; past this many (and past the number
# of waiting items) the queue rebuilds its indexes so memory stays proportional to what waits.
_COMPACT_AFTER_DROPS = 1024


@dataclass(eq=False, slots=True)
class QueuedItem:
    """Bookkeeping of one queued item: its token length, when it was queued, the deadline of
    its call (``time.monotonic()``; None: none), and whether it still waits."""

    length: int
    enqueued_at: float
    deadline: float | None = None
    waiting: bool = field(default=True, init=False)


EntryT = TypeVar("EntryT", bound=QueuedItem)


@dataclass(frozen=True, slots=True)
class Selection(Generic[EntryT]):
    """A proposed batch, oldest item first.

    ``full`` is true when a limit stopped it (size, or the next closest item would exceed the
    padded-token limit), i.e. waiting for more arrivals would not make a better batch.
    """

    entries: list[EntryT]
    full: bool


class LengthBucketQueue(Generic[EntryT]):
    """Waiting items, indexed by arrival and by length.

    Invariants: every bucket holds at least one waiting item and its front item is waiting;
    ``_lengths`` is the sorted list of bucket keys.
    """

    def __init__(self) -> None:
        self._arrivals: deque[EntryT] = deque()
        self._buckets: dict[int, deque[EntryT]] = {}
        self._lengths: list[int] = []
        self._waiting = 0
        self._drops_since_compaction = 0

    def __len__(self) -> int:
        """Number of waiting items."""
        return self._waiting

    @property
    def longest(self) -> int:
        """Length of the longest waiting item (0 when empty)."""
        return self._lengths[-1] if self._lengths else 0

    def push(self, entry: EntryT) -> None:
        """Queues one item."""
        bucket = self._buckets.get(entry.length)
        if bucket is None:
            bucket = self._buckets[entry.length] = deque()
            bisect.insort(self._lengths, entry.length)
        bucket.append(entry)
        self._arrivals.append(entry)
        self._waiting += 1

    def oldest(self) -> EntryT | None:
        """The item that has waited longest, or None when nothing waits."""
        arrivals = self._arrivals
        while arrivals and not arrivals[0].waiting:
            arrivals.popleft()
        return arrivals[0] if arrivals else None

    def select(self, max_size: int, max_tokens: int) -> Selection[EntryT]:
        """Proposes the next batch without changing the queue (see the module docstring)."""
        anchor = self.oldest()
        if anchor is None:
            return Selection([], full=False)
        centre = bisect.bisect_left(self._lengths, anchor.length)
        longer = self._walk(centre, 1, skip=anchor)
        shorter = self._walk(centre - 1, -1, skip=None)
        next_longer, next_shorter = next(longer, None), next(shorter, None)
        chosen, longest = [anchor], anchor.length
        while len(chosen) < max_size:
            fitting = [
                entry
                for entry in (next_longer, next_shorter)
                if entry is not None
                and (len(chosen) + 1) * max(longest, entry.length) <= max_tokens
            ]
            if not fitting:
                return Selection(chosen, full=next_longer is not None or next_shorter is not None)
            pick = min(
                fitting, key=lambda entry: (abs(entry.length - anchor.length), entry.enqueued_at)
            )
            chosen.append(pick)
            longest = max(longest, pick.length)
            if pick is next_longer:
                next_longer = next(longer, None)
            else:
                next_shorter = next(shorter, None)
        return Selection(chosen, full=True)

    def take(self, entries: Iterable[EntryT]) -> None:
        """Removes selected items from the queue (they are about to run)."""
        self._release(entries)

    def drop(self, entries: Iterable[EntryT]) -> int:
        """Removes those of ``entries`` still waiting; returns how many that was."""
        released = self._release(entries)
        self._drops_since_compaction += released
        if self._drops_since_compaction > max(_COMPACT_AFTER_DROPS, self._waiting):
            self._compact()
        return released

    def drain(self) -> list[EntryT]:
        """Removes and returns every waiting item, oldest first."""
        waiting = [entry for entry in self._arrivals if entry.waiting]
        for entry in waiting:
            entry.waiting = False
        self._arrivals.clear()
        self._buckets.clear()
        self._lengths.clear()
        self._waiting = 0
        self._drops_since_compaction = 0
        return waiting

    def _walk(self, start: int, step: int, skip: EntryT | None) -> Iterator[EntryT]:
        """Yields waiting items bucket by bucket from ``start`` in direction ``step``."""
        index = start
        while 0 <= index < len(self._lengths):
            for entry in self._buckets[self._lengths[index]]:
                if entry.waiting and entry is not skip:
                    yield entry
            index += step

    def _release(self, entries: Iterable[EntryT]) -> int:
        """Marks waiting ``entries`` as gone and restores the bucket invariants."""
        touched: set[int] = set()
        released = 0
        for entry in entries:
            if entry.waiting:
                entry.waiting = False
                touched.add(entry.length)
                released += 1
        self._waiting -= released
        for length in touched:
            self._trim_bucket(length)
        return released

    def _trim_bucket(self, length: int) -> None:
        """Unlinks the bucket's leading non-waiting items; deletes the bucket when empty."""
        bucket = self._buckets[length]
        while bucket and not bucket[0].waiting:
            bucket.popleft()
        if not bucket:
            del self._buckets[length]
            del self._lengths[bisect.bisect_left(self._lengths, length)]

    def _compact(self) -> None:
        """Rebuilds the indexes from the waiting items only."""
        waiting = [entry for entry in self._arrivals if entry.waiting]
        self._arrivals = deque(waiting)
        self._buckets = {}
        for entry in waiting:
            self._buckets.setdefault(entry.length, deque()).append(entry)
        self._lengths = sorted(self._buckets)
        self._drops_since_compaction = 0
