"""Raw ONNX Runtime throughput at given batch shapes: the engine alone, no server around it."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modelrepo import ModelSpec

Shape = tuple[int, int]  # (batch size, padded length)


def encoder_session(
    directory: Path, spec: ModelSpec, intra_op_threads: int = 0
) -> ort.InferenceSession:
    """The served encoder with the server's own session settings."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    path = directory / spec.graph("encoder").file
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _inputs(shape: Shape, vocab_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    batch, length = shape
    ids = rng.integers(5, vocab_size, size=(batch, length), dtype=np.int64)
    ones = np.ones_like(ids)
    return {"input_ids": ids, "attention_mask": ones, "token_type_ids": np.zeros_like(ids)}


def replay(
    session: ort.InferenceSession, spec: ModelSpec, shapes: Counter[Shape], budget_s: float
) -> float:
    """Texts per second when the engine runs exactly this mix of batch shapes back to back.

    Every distinct shape runs at least once (after one untimed warm-up run); the mix is then
    scaled down proportionally to fit ``budget_s``.
    """
    rng = np.random.default_rng(0)
    output = [spec.graph("encoder").outputs[-1].name]  # the last layer
    vocab = int(spec.extra.get("vocab_size", 1000))
    costs: dict[Shape, float] = {}
    for shape in shapes:
        feed = _inputs(shape, vocab, rng)
        session.run(output, feed)
        started = time.perf_counter()
        session.run(output, feed)
        costs[shape] = time.perf_counter() - started
    estimate = sum(costs[shape] * count for shape, count in shapes.items())
    scale = min(1.0, budget_s / estimate) if estimate > 0 else 1.0
    texts = 0
    elapsed = 0.0
    for shape, count in shapes.items():
        repeats = max(1, round(count * scale))
        feed = _inputs(shape, vocab, rng)
        started = time.perf_counter()
        for _ in range(repeats):
            session.run(output, feed)
        elapsed += time.perf_counter() - started
        texts += repeats * shape[0]
    return texts / elapsed
