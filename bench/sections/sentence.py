"""The sentence section: a sentence-transformers model served against the engine alone and
against sentence-transformers' own ``encode``.

The model is shaped like all-MiniLM-L6-v2 (6 × 384 BERT, mean pooling, Normalize), random
weights, saved by sentence-transformers and imported as a user's folder is. Side by side in one
run: the server's texts/s at saturation over gRPC (N clients, one held-out sentence per call,
cache off), raw ONNX Runtime at exactly the batch shapes the server formed, and
``SentenceTransformer.encode`` on the same sentences (batch 32, as it defaults to) in this
process, on as many threads as the engine. Goals: served at least 0.9 of raw, and ahead of
``encode``. The served vectors are checked against ``encode``'s first, so the three compute the
same thing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common.models import SENTENCE_MINILM, newest_directory
from bench.common.report import console, make_table, ms
from bench.common.servers import Engine
from bench.common.texts import read_texts
from bench.sections.serving import bench_serving
from modelrepo import load_checked
from service.domain import EmbedQuery, resolve_embed_options
from service.runtime.bert import BertRuntime

MODEL = SENTENCE_MINILM
GOAL_OVER_RAW = 0.9
ENCODE_BATCH = 32
PARITY_TEXTS = 64


def _served_vectors(directory: Path, texts: list[str], engine: Engine) -> np.ndarray:
    """The default embedding of each text as the server computes it (the served runtime)."""
    spec = load_checked(directory)
    runtime = BertRuntime(directory, spec, engine.session_options())
    query = EmbedQuery(model=MODEL, version="", texts=tuple(texts), truncate=True)
    options = resolve_embed_options(spec, query, runtime.embed_support)
    pooled = runtime.embed_batch(runtime.prepare_embed(texts, options))
    return np.stack([each.result.vectors for each in pooled])


def _encode_rate(model: Any, sentences: list[str], seconds: float) -> float:
    """Texts per second of ``encode`` over the sentences, in chunks, for about ``seconds``."""
    model.encode(sentences[:ENCODE_BATCH], batch_size=ENCODE_BATCH)  # warm-up
    done, started, start = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        chunk = sentences[start : start + 8 * ENCODE_BATCH] or sentences[: 8 * ENCODE_BATCH]
        model.encode(chunk, batch_size=ENCODE_BATCH)
        done += len(chunk)
        start = (start + len(chunk)) % len(sentences)
    return done / (time.perf_counter() - started)


def bench_sentence(
    root: Path, texts: Path, clients: int, seconds: float, engine: Engine
) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    if engine.threads:  # encode on as many threads as the engine (default: both, per core)
        torch.set_num_threads(engine.threads)
    directory = newest_directory(root, MODEL)
    spec = load_checked(directory)
    kind, _, folder = spec.source.partition(":")
    if kind != "hf":
        raise ValueError(f"{MODEL}: imported from {spec.source}, not from a folder")
    sentences = read_texts(texts)
    device = "cuda" if engine.device == "cuda" else "cpu"
    reference = SentenceTransformer(folder, device=device)
    sample = sentences[:PARITY_TEXTS]
    expected = reference.encode(sample, batch_size=ENCODE_BATCH)
    parity = float(np.abs(_served_vectors(directory, sample, engine) - expected).max())
    served = bench_serving(root, MODEL, texts, clients, seconds, engine)
    console.print(f"[bold]{MODEL}[/bold]: sentence-transformers encode, batch {ENCODE_BATCH}")
    encode = _encode_rate(reference, sentences, seconds)
    throughput = served["dynamic"]["throughput"]
    return {
        "model": MODEL,
        "parity_max_abs_diff": parity,
        "served": served["dynamic"],
        "mean_batch": served["mean_batch_dynamic"],
        "raw": served["raw_dynamic"],
        "encode": encode,
        "served_over_raw": throughput / served["raw_dynamic"],
        "served_over_encode": throughput / encode,
        "goal_over_raw_met": throughput / served["raw_dynamic"] >= GOAL_OVER_RAW,
        "goal_over_encode_met": throughput > encode,
    }


def report_sentence(result: dict[str, Any]) -> None:
    table = make_table(
        f"{result['model']} (all-MiniLM-L6-v2's shape): texts/s",
        ("how", "texts/s", "p50 ms", "p99 ms", "served / this"),
    )
    served = result["served"]
    table.add_row(
        f"served, gRPC, dynamic batching (mean batch {result['mean_batch']:.1f})",
        f"{served['throughput']:.0f}",
        ms(served["p50_ms"]),
        ms(served["p99_ms"]),
        "1.00",
    )
    table.add_row(
        "raw ONNX Runtime, the same batch shapes",
        f"{result['raw']:.0f}",
        "",
        "",
        f"{result['served_over_raw']:.2f}",
    )
    table.add_row(
        f"sentence-transformers encode, batch {ENCODE_BATCH}",
        f"{result['encode']:.0f}",
        "",
        "",
        f"{result['served_over_encode']:.2f}",
    )
    console.print(table)
    verdicts = (
        f"served / raw ≥ {GOAL_OVER_RAW:g}: {'met' if result['goal_over_raw_met'] else 'missed'}; "
        f"served ahead of encode: {'met' if result['goal_over_encode_met'] else 'missed'}"
    )
    console.print(
        f"{verdicts}; served vectors against encode's: max |diff| "
        f"{result['parity_max_abs_diff']:.1e} over {PARITY_TEXTS} texts"
    )
