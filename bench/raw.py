"""Raw ONNX Runtime throughput at given batch shapes: the engine alone, no server around it."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modelrepo import ModelSpec
from service.runtime.session import SessionOptions, open_session

Shape = tuple[int, int]  # (batch size, padded length)


def encoder_session(
    directory: Path, spec: ModelSpec, intra_op_threads: int = 0
) -> ort.InferenceSession:
    """The served encoder, opened by the server's own session factory, on CPU."""
    options = SessionOptions(device="cpu", intra_op_threads=intra_op_threads)
    return open_session(directory / spec.graph("encoder").file, options)


def _inputs(shape: Shape, vocab_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    batch, length = shape
    ids = rng.integers(5, vocab_size, size=(batch, length), dtype=np.int64)
    ones = np.ones_like(ids)
    return {"input_ids": ids, "attention_mask": ones, "token_type_ids": np.zeros_like(ids)}


@dataclass(frozen=True)
class RawRun:
    """The engine alone on a mix of batch shapes: texts run, wall and CPU seconds (the timed
    runs only; this process's CPU, all threads)."""

    texts: int
    wall_s: float
    cpu_s: float

    @property
    def throughput(self) -> float:
        return self.texts / self.wall_s


def replay(
    session: ort.InferenceSession, spec: ModelSpec, shapes: Counter[Shape], budget_s: float
) -> float:
    """Texts per second when the engine runs exactly this mix of batch shapes back to back."""
    return replay_measured(session, spec, shapes, budget_s).throughput


def replay_measured(
    session: ort.InferenceSession, spec: ModelSpec, shapes: Counter[Shape], budget_s: float
) -> RawRun:
    """The engine on exactly this mix of batch shapes back to back, timed and CPU-counted.

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
    elapsed = cpu = 0.0
    for shape, count in shapes.items():
        repeats = max(1, round(count * scale))
        feed = _inputs(shape, vocab, rng)
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            session.run(output, feed)
        elapsed += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        texts += repeats * shape[0]
    return RawRun(texts, elapsed, cpu)


def batch_times(
    session: ort.InferenceSession, spec: ModelSpec, shape: Shape, runs: int
) -> list[float]:
    """Seconds of each of ``runs`` back-to-back runs at one shape (after one untimed run)."""
    output = [spec.graph("encoder").outputs[-1].name]
    feed = _inputs(shape, int(spec.extra.get("vocab_size", 1000)), np.random.default_rng(0))
    session.run(output, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(output, feed)
        times.append(time.perf_counter() - started)
    return times
