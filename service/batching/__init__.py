"""Dynamic batching: one batcher per model operation groups concurrent callers' items into padded
batches, shaped by a policy (fill to the limits, or by a measured cost table)."""

from service.batching.batcher import DynamicBatcher
from service.batching.calls import BatchTiming
from service.batching.costs import CostTable, RunBatch, cost_grid, measure_cost_table
from service.batching.observers import (
    BatcherKey,
    BatchObserver,
    CostObserver,
    ObserverFactory,
    TeeObserver,
)
from service.config import BatchingConfig

__all__ = [
    "BatchObserver",
    "BatchTiming",
    "BatcherKey",
    "BatchingConfig",
    "CostObserver",
    "CostTable",
    "DynamicBatcher",
    "ObserverFactory",
    "RunBatch",
    "TeeObserver",
    "cost_grid",
    "measure_cost_table",
]
