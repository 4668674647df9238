"""The one batch observer of the bench: what the server's batcher formed during a run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from service.batching import BatcherKey

Shape = tuple[int, int]
"""(batch size, padded length): what the raw engine replays."""
DEFAULT_LENGTH = 8
"""The median length of no batches at all (a run that formed none)."""


@dataclass
class BatchRecorder:
    """Batch observer: the shape of every batch formed, real against padded tokens, and the
    items dropped by reason. Pass ``for_embed`` as the server's observer factory."""

    shapes: Counter[Shape] = field(default_factory=Counter)
    real_tokens: int = 0
    padded_tokens: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self.shapes[(batch_size, padded_tokens // batch_size)] += 1
        self.real_tokens += real_tokens
        self.padded_tokens += padded_tokens

    def on_dropped(self, reason: str, count: int) -> None:
        self.dropped[reason] += count

    def on_executed(self, seconds: float) -> None:
        pass

    def for_embed(self, key: BatcherKey) -> BatchRecorder | None:
        """As the server's observer factory: the embed batches only (not fill-mask's)."""
        return self if key.operation == "embed" else None

    def take(self) -> BatchRecorder:
        """What was recorded since the last ``take``, and start afresh: one server, several
        runs (read it once a run's load has been answered, so no batch straddles two)."""
        taken = BatchRecorder(self.shapes, self.real_tokens, self.padded_tokens, self.dropped)
        self.shapes, self.dropped = Counter(), Counter()
        self.real_tokens = self.padded_tokens = 0
        return taken

    @property
    def mean_batch(self) -> float:
        batches = sum(self.shapes.values())
        return sum(size * count for (size, _), count in self.shapes.items()) / max(1, batches)

    @property
    def efficiency(self) -> float:
        """Real over padded tokens."""
        return self.real_tokens / max(1, self.padded_tokens)

    @property
    def median_length(self) -> int:
        """The median padded length over batches."""
        lengths = [length for (_, length), count in self.shapes.items() for _ in range(count)]
        return int(np.median(lengths)) if lengths else DEFAULT_LENGTH
