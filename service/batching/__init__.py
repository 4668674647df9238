"""Dynamic batching: one batcher per model groups concurrent callers' items into padded batches."""

from service.batching.batcher import (
    BatchingConfig,
    BatchObserver,
    BatchTiming,
    DynamicBatcher,
    TeeObserver,
)

__all__ = ["BatchObserver", "BatchTiming", "BatchingConfig", "DynamicBatcher", "TeeObserver"]
