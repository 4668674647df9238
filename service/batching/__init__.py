"""Dynamic batching: one batcher per model groups concurrent callers' items into padded batches."""

from service.batching.batcher import (
    BatchingConfig,
    BatchObserver,
    BatchTiming,
    CostObserver,
    DynamicBatcher,
    TeeObserver,
)
from service.batching.cost import CostTable, RunBatch, cost_grid, measure_cost_table

__all__ = [
    "BatchObserver",
    "BatchTiming",
    "BatchingConfig",
    "CostObserver",
    "CostTable",
    "DynamicBatcher",
    "RunBatch",
    "TeeObserver",
    "cost_grid",
    "measure_cost_table",
]
