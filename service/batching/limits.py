"""Each model's batching: the server's limits overridden by the model's own, and whether its
embed batches are shaped by a cost table timed at warm-up.

The limits are the server-wide settings, overridden per model by the ``batching`` section of
``models/<name>/config.json`` (BERT's encoder and ELMo's LSTM cost very differently), read
through the server's one ``ModelConfigReader``.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelrepo.model_config import ModelConfigReader
from service.config import BatchingConfig


@dataclass(frozen=True)
class ModelBatching:
    """Where each model's batching limits come from, and whether (and for how long) a cost
    table is timed for it."""

    configs: ModelConfigReader
    defaults: BatchingConfig
    cost_model: bool
    """The server's choice; a model's ``config.json`` may say otherwise."""
    budget_s: float

    def limits(self, name: str) -> BatchingConfig:
        """The server's limits with the model's own applied."""
        own = self.configs.read(name).batching
        if own is None:
            return self.defaults
        return self.defaults.model_copy(
            update=own.model_dump(exclude={"cost_model"}, exclude_none=True)
        )

    def measures(self, name: str) -> bool:
        """Whether the model's embed batches are shaped by a cost table."""
        own = self.configs.read(name).batching
        choice = None if own is None else own.cost_model
        return self.cost_model if choice is None else choice == "on"

    def describe(self, name: str) -> str:
        """One log line's worth: the limits a model's batchers work within."""
        config = self.limits(name)
        return (
            f"max_batch_size {config.max_batch_size}, max_batch_tokens "
            f"{config.max_batch_tokens}, max_queue_delay_ms {config.max_queue_delay_ms:g}, "
            f"cost model {'on' if self.measures(name) else 'off'}"
        )
