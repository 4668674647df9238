"""What a model version's embed batches cost, timed at warm-up on its own engine.

Synthetic batches of the served runtime's own ``embed_batch`` (the graph and the pooling) on a
small grid of batch sizes x lengths, within a budget of a few seconds, make the table the embed
batcher chooses shapes by (``service.batching.costs``). Fill-mask batches keep filling to the
limits: they are rare next to embeddings, and their cost (the head at the masks) is another
table's worth of warm-up.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from service.batching.costs import CostTable, RunBatch, cost_grid, measure_cost_table
from service.batching.limits import ModelBatching
from service.domain import EmbedOptions, Pooling
from service.runtime.base import Runtime

log = logging.getLogger(__name__)

PROBE_WORD = "the"
"""The probe's text is this word repeated: one token in most vocabularies; a vocabulary
without it is timed on its unknown token (``skip_unknown``), which costs the same."""


def embed_probe(runtime: Runtime) -> RunBatch:
    """``run(batch_size, length)``: the runtime's own ``embed_batch`` on ``batch_size`` copies
    of one text cut to ``length`` tokens, at the model's default layers (what a default request
    costs the inference thread)."""
    spec = runtime.spec
    options = EmbedOptions(
        Pooling.MEAN, layers=spec.default_layers, truncate=True, skip_unknown=True
    )
    text = " ".join([PROBE_WORD] * spec.max_sequence_length)
    longest = runtime.prepare_embed([text], options)[0]

    def run(batch_size: int, length: int) -> None:
        markers = len(longest.ids) - len(longest.tokens)  # ELMo's <S> and </S>; BERT's none
        tokens = longest.tokens[: max(1, length - markers)]
        item = replace(longest, ids=longest.ids[:length], tokens=tokens)
        runtime.embed_batch([item] * batch_size)

    return run


def measure_costs(runtime: Runtime, batching: ModelBatching) -> CostTable | None:
    """The embed cost table of a warmed-up runtime, timed now (blocks for the budget: run it
    off the event loop), or None where batches fill to the limits or nothing could be timed."""
    spec = runtime.spec
    if not runtime.batched or not batching.measures(spec.name):
        return None
    config, budget_s = batching.limits(spec.name), batching.budget_s
    sizes, lengths = cost_grid(
        config.max_batch_size, config.max_batch_tokens, spec.max_sequence_length
    )
    table = measure_cost_table(
        embed_probe(runtime),
        sizes,
        lengths,
        budget_s=budget_s,
        max_batch_tokens=config.max_batch_tokens,
    )
    label = f"{spec.name}/{spec.version}"
    if table is None:
        log.warning("%s: no batch could be timed within %.1f s; batches fill up", label, budget_s)
    else:
        log.info("%s embed cost table: %s", label, table.describe())
    return table
