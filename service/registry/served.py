"""One served model version: its runtime, a batcher per batched operation on one inference thread
of its own, its cache fingerprints, and the requests resolved to it and not yet answered.

Per model version there is one inference thread shared by its batchers (embeddings and
fill-mask), so its graphs never compete for the cores. Static runtimes (word2vec) have no
batcher and no inference thread: their lookups run at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from modelrepo import ModelSpec
from service.batching import BatcherKey, CostTable, DynamicBatcher, ObserverFactory
from service.batching.limits import ModelBatching
from service.cache.keys import graph_fingerprint
from service.runtime.base import FillMaskRuntime, Runtime, item_length

log = logging.getLogger(__name__)

EMBED = "embed"
FILL_MASK = "fill_mask"


@dataclass(eq=False)
class ServedModel:
    """A model version that answers requests."""

    runtime: Runtime
    batchers: dict[str, DynamicBatcher[Any, Any]] = field(default_factory=dict)
    """Per batched operation (``embed``, ``fill_mask``), its batcher; none when static."""
    inference_thread: ThreadPoolExecutor | None = None
    fingerprints: dict[str, str] = field(default_factory=dict)
    """Per cached operation, the fingerprint of its graph (part of every cache key)."""
    active: int = 0
    """Requests resolved to this version and not yet answered: a retired version unloads
    once this reaches 0."""
    answered: int = 0
    """Requests this version has finished (answered or failed), since it was loaded."""
    loaded_at: float = field(default_factory=time.time)
    """When it was made ready to serve (Unix seconds)."""

    @property
    def spec(self) -> ModelSpec:
        return self.runtime.spec

    @property
    def label(self) -> str:
        return f"{self.spec.name}/{self.spec.version}"

    def batcher(self, operation: str) -> DynamicBatcher[Any, Any] | None:
        return self.batchers.get(operation)

    @property
    def embed_batcher(self) -> DynamicBatcher[Any, Any] | None:
        return self.batchers.get(EMBED)

    @property
    def fill_mask_batcher(self) -> DynamicBatcher[Any, Any] | None:
        return self.batchers.get(FILL_MASK)

    @property
    def direct(self) -> Runtime | None:
        """The runtime when it runs at once (static lookups), else None."""
        return None if self.runtime.batched else self.runtime

    @property
    def cost_table(self) -> CostTable | None:
        """What its embed batches cost by shape, when its batcher chooses shapes by it."""
        batcher = self.embed_batcher
        return None if batcher is None else batcher.cost_table

    async def start(self) -> None:
        for batcher in self.batchers.values():
            await batcher.start()

    async def stop(self, grace: float | None) -> None:
        """Finish queued work (within ``grace``, every batcher at once); then ``close``."""
        await asyncio.gather(*(batcher.stop(grace) for batcher in self.batchers.values()))

    def close(self) -> None:
        """Release a version whose batchers have stopped: its inference thread, then sessions."""
        if self.inference_thread is not None:
            self.inference_thread.shutdown(wait=True)
        self.runtime.close()


def serve(
    runtime: Runtime,
    batching: ModelBatching,
    cost_table: CostTable | None,
    observers: ObserverFactory | None,
) -> ServedModel:
    """A loaded, warmed-up version with its batchers (not started yet)."""
    spec = runtime.spec
    if not runtime.batched:  # static lookups: no queue, no thread, never cached
        return ServedModel(runtime)
    operations = [EMBED, FILL_MASK] if spec.supports("fill_mask") else [EMBED]
    fingerprints = {
        operation: graph_fingerprint(spec, runtime.graph_roles[operation])
        for operation in operations
    }
    label = f"{spec.name}/{spec.version}"
    log.info("%s batching: %s", label, batching.describe(spec.name))
    limits = batching.limits(spec.name)
    thread = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{label}")
    executes: dict[str, Any] = {EMBED: runtime.embed_batch}
    if FILL_MASK in operations:
        masked: FillMaskRuntime = runtime  # type: ignore[assignment]
        executes[FILL_MASK] = masked.run_fill_mask
    batchers: dict[str, DynamicBatcher[Any, Any]] = {}
    for operation, execute in executes.items():
        key = BatcherKey(spec.name, spec.version, operation)
        batchers[operation] = DynamicBatcher(
            str(key),
            execute,
            item_length,
            limits,
            cost_table=cost_table if operation == EMBED else None,
            executor=thread,
            observer=observers(key) if observers is not None else None,
        )
    return ServedModel(runtime, batchers, thread, fingerprints)
