"""ONNX Runtime's transformer optimizer (fused attention, SkipLayerNorm, BiasGelu)."""

from __future__ import annotations

import logging
from pathlib import Path

from onnxruntime.transformers.optimizer import optimize_model


def optimize_transformer(source: Path, target: Path, num_heads: int, hidden_size: int) -> None:
    """Write the fused graph of a BERT-like ``source`` to ``target`` (CPU, fp32)."""
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    optimized = optimize_model(
        str(source),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        use_gpu=False,
    )
    optimized.save_model_to_file(str(target))
