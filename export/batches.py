"""Training batches shared by the trainers: similar lengths together, order seeded."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random
) -> Iterator[list[int]]:
    """Endless batches of sentence indices, similar lengths together, order shuffled per epoch.

    Each epoch shuffles the indices, sorts blocks of 50 batches by length (little padding)
    and shuffles the batches, all from ``rng``, so a seed fixes the whole sequence.
    """
    while True:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        chunk = batch_size * 50
        epoch: list[list[int]] = []
        for start in range(0, len(order), chunk):
            block = sorted(order[start : start + chunk], key=lengths.__getitem__)
            epoch.extend(block[i : i + batch_size] for i in range(0, len(block), batch_size))
        rng.shuffle(epoch)
        yield from epoch
