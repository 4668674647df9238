"""Each model's batching limits, and the cost table its embed batcher chooses shapes by.

The limits are the server-wide settings, overridden per model by the ``batching`` section of
``models/<name>/config.json`` (BERT's encoder and ELMo's LSTM cost very differently). The cost
table is measured at warm-up on the model's own engine: synthetic batches of the served
runtime's ``embed_batch`` on a small grid of batch sizes × lengths, within a budget of a few
seconds (``service.batching.cost``). Fill-mask batches keep filling to the limits: they are rare
next to embeddings, and their cost (the head at the masks) is another table's worth of warm-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from modelrepo import SpecError
from modelrepo.model_config import BatchingLimits, read_model_config
from service.batching import BatchingConfig, CostTable, RunBatch, cost_grid, measure_cost_table
from service.domain import EmbedOptions, Pooling
from service.runtime.base import Runtime

log = logging.getLogger(__name__)

PROBE_WORD = "the"
"""A word every vocabulary has as one token: the probe's text is this word repeated."""


@dataclass(frozen=True)
class BatchShaping:
    """Where per-model limits come from, and whether (and how long) to time a cost table."""

    models_dir: Path | None = None
    cost_model: bool = False
    budget_s: float = 3.0

    def limits(self, name: str, defaults: BatchingConfig) -> BatchingConfig:
        return batching_for(self.models_dir, name, defaults)

    def measures(self, name: str) -> bool:
        return uses_cost_model(self.models_dir, name, self.cost_model)


def describe_limits(config: BatchingConfig, cost_model: bool) -> str:
    """One log line's worth: the limits a model's batchers work within."""
    return (
        f"max_batch_size {config.max_batch_size}, max_batch_tokens {config.max_batch_tokens}, "
        f"max_queue_delay_ms {config.max_queue_delay_ms:g}, "
        f"cost model {'on' if cost_model else 'off'}"
    )


def own_limits(models_dir: Path | None, name: str) -> BatchingLimits | None:
    """The ``batching`` section of the model's ``config.json``, if it has one. A broken file
    (the version policy's reader refuses it with its own log line) leaves the server's."""
    if models_dir is None:
        return None
    try:
        config = read_model_config(models_dir / name)
    except SpecError as error:
        log.warning("%s; batching limits of %s stay the server's", error, name)
        return None
    return None if config is None else config.batching


def batching_for(models_dir: Path | None, name: str, defaults: BatchingConfig) -> BatchingConfig:
    """``defaults`` with the model's own limits applied."""
    limits = own_limits(models_dir, name)
    if limits is None:
        return defaults
    given = limits.model_dump(exclude={"cost_model"}, exclude_none=True)
    return replace(defaults, **given)


def uses_cost_model(models_dir: Path | None, name: str, default: bool) -> bool:
    """The server's ``batching_cost_model``, unless the model's ``config.json`` says otherwise."""
    limits = own_limits(models_dir, name)
    choice = None if limits is None else limits.cost_model
    return default if choice is None else choice == "on"


def embed_probe(runtime: Runtime) -> RunBatch:
    """``run(batch_size, length)``: the runtime's own ``embed_batch`` (the graph and the pooling)
    on ``batch_size`` copies of one text cut to ``length`` tokens, at the model's default layers
    (what a default request costs the inference thread)."""
    spec = runtime.spec
    options = EmbedOptions(Pooling.MEAN, layers=spec.default_layers, truncate=True)
    text = " ".join([PROBE_WORD] * spec.max_sequence_length)
    longest = runtime.prepare_embed([text], options)[0]

    def run(batch_size: int, length: int) -> None:
        markers = len(longest.ids) - len(longest.tokens)  # ELMo's <S> and </S>; BERT's none
        tokens = longest.tokens[: max(1, length - markers)]
        item = replace(longest, ids=longest.ids[:length], tokens=tokens)
        runtime.embed_batch([item] * batch_size)

    return run


def measure_embed_costs(
    runtime: Runtime, config: BatchingConfig, budget_s: float
) -> CostTable | None:
    """The embed batcher's cost table, measured within ``budget_s`` (None: nothing measured)."""
    spec = runtime.spec
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
