"""Raw ONNX Runtime throughput at given batch shapes: the engine alone, no server around it."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.common.batches import Shape
from bench.common.models import newest_directory
from bench.common.servers import Engine
from modelrepo import GraphSpec, ModelSpec, load_checked
from service.runtime.session import open_session

ELMO_CHARACTERS = 261
"""Character ids of the ELMo biLM: bytes, padding and the word/sentence markers."""


def embed_graph(spec: ModelSpec) -> GraphSpec:
    """The graph that computes embeddings: BERT's ``encoder`` or ELMo's ``bilm``."""
    return spec.graph("encoder" if "encoder" in spec.graphs else "bilm")


def embed_output(spec: ModelSpec) -> str:
    """What a default request fetches: BERT's last layer, ELMo's stacked ``layers``."""
    graph = embed_graph(spec)
    return graph.outputs[-1].name if "encoder" in spec.graphs else "layers"


def encoder_session(
    directory: Path, spec: ModelSpec, engine: Engine | None = None
) -> ort.InferenceSession:
    """The served embedding graph, opened by the server's own session factory on the bench's
    device (default: CPU, one thread per core)."""
    options = (engine or Engine()).session_options()
    return open_session(directory / embed_graph(spec).file, options)


def newest_encoder(root: Path, name: str, engine: Engine) -> tuple[ort.InferenceSession, ModelSpec]:
    """The served embedding graph of the newest version of ``name`` under ``root``, and its
    spec: what a section replays once its server is stopped."""
    directory = newest_directory(root, name)
    spec = load_checked(directory)
    return encoder_session(directory, spec, engine), spec


def _inputs(shape: Shape, spec: ModelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Synthetic inputs of ``shape`` for every input the graph declares: random token or
    character ids, an all-ones attention mask, zeros for segment ids and initial states."""
    batch, length = shape
    vocab_size = int(spec.extra.get("vocab_size", 1000))
    feed = {}
    for tensor in embed_graph(spec).inputs:
        dims = tuple(
            batch if axis == "batch_size" else length if axis == "sequence_length" else axis
            for axis in tensor.shape
        )
        sizes = tuple(int(axis) for axis in dims)
        if tensor.name == "input_ids":
            feed[tensor.name] = rng.integers(5, vocab_size, size=sizes, dtype=np.int64)
        elif tensor.name == "char_ids":
            feed[tensor.name] = rng.integers(1, ELMO_CHARACTERS, size=sizes, dtype=np.int64)
        elif tensor.name == "attention_mask":
            feed[tensor.name] = np.ones(sizes, dtype=np.int64)
        else:
            feed[tensor.name] = np.zeros(sizes, dtype=np.dtype(tensor.dtype))
    return feed


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
    output = [embed_output(spec)]
    costs: dict[Shape, float] = {}
    for shape in shapes:
        feed = _inputs(shape, spec, rng)
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
        feed = _inputs(shape, spec, rng)
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
    output = [embed_output(spec)]
    feed = _inputs(shape, spec, np.random.default_rng(0))
    session.run(output, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(output, feed)
        times.append(time.perf_counter() - started)
    return times
