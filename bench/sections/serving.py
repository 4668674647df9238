"""The serving section: served against raw throughput, dynamic batching against batch-1.

For each model the repository is served in this process and driven over gRPC by the load
driver (N concurrent clients, one held-out sentence per call), with the result cache off; the
batch shapes the server formed are recorded, then raw ONNX Runtime runs exactly those shapes
with the server stopped. So, side by side in one run:

* served / raw: the server's throughput at saturation over the engine's at the same batches;
* batching gain: dynamic batching over batch-1 serving at the same concurrency, next to the raw
  engine's own gain between the same two mixes of batch shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common.batches import BatchRecorder
from bench.common.load import run_load
from bench.common.raw import newest_encoder, replay
from bench.common.report import console, make_table
from bench.common.servers import Engine, bench_settings
from service.background import background_server
from service.config import Settings


def serve_and_load(
    settings: Settings, model: str, texts: Path, clients: int, seconds: float
) -> tuple[dict[str, Any], BatchRecorder]:
    recorder = BatchRecorder()
    with background_server(settings, recorder.for_embed) as server:
        load = run_load(server.target, model, texts, clients, seconds)
    return load, recorder


def bench_serving(
    models_dir: Path, name: str, texts: Path, clients: int, seconds: float, engine: Engine
) -> dict[str, Any]:
    settings = bench_settings(models_dir, name, engine)
    console.print(f"[bold]{name}[/bold]: dynamic batching, {clients} clients, {seconds:.0f} s")
    dynamic, dynamic_batches = serve_and_load(settings, name, texts, clients, seconds)
    console.print(f"[bold]{name}[/bold]: batch-1 serving, {clients} clients, {seconds:.0f} s")
    single_settings = settings.model_copy(update={"max_batch_size": 1})
    single, single_batches = serve_and_load(single_settings, name, texts, clients, seconds)
    console.print(f"[bold]{name}[/bold]: raw ONNX Runtime at the same batch shapes")
    session, spec = newest_encoder(models_dir, name, engine)
    raw_dynamic = replay(session, spec, dynamic_batches.shapes, budget_s=seconds)
    raw_single = replay(session, spec, single_batches.shapes, budget_s=seconds)
    return {
        "model": name,
        "dynamic": dynamic,
        "single": single,
        "raw_dynamic": raw_dynamic,
        "raw_single": raw_single,
        "mean_batch_dynamic": dynamic_batches.mean_batch,
        "served_over_raw": dynamic["throughput"] / raw_dynamic,
        "served_gain": dynamic["throughput"] / max(1e-9, single["throughput"]),
        "raw_gain": raw_dynamic / raw_single,
        "top_shapes": [
            [size, length, count] for (size, length), count in dynamic_batches.shapes.most_common(5)
        ],
    }


def report_serving(results: list[dict[str, Any]]) -> None:
    table = make_table(
        "served vs raw ONNX Runtime (texts/s)",
        (
            "model",
            "mode",
            "served",
            "raw at same shapes",
            "served/raw",
            "p50 ms",
            "p99 ms",
            "mean batch",
            "errors",
        ),
    )
    for result in results:
        for mode, raw in (("dynamic", "raw_dynamic"), ("single", "raw_single")):
            served = result[mode]
            table.add_row(
                result["model"],
                "dynamic batching" if mode == "dynamic" else "batch-1",
                f"{served['throughput']:.0f}",
                f"{result[raw]:.0f}",
                f"{served['throughput'] / result[raw]:.2f}",
                f"{served['p50_ms']:.1f}",
                f"{served['p99_ms']:.1f}",
                f"{result['mean_batch_dynamic']:.1f}" if mode == "dynamic" else "1.0",
                str(served["errors"] or "-"),
            )
    console.print(table)
    gains = make_table(
        "gain of dynamic batching over batch-1 at the same concurrency",
        ("model", "served gain", "raw engine gain", "served / raw gain"),
    )
    for result in results:
        gains.add_row(
            result["model"],
            f"{result['served_gain']:.2f}x",
            f"{result['raw_gain']:.2f}x",
            f"{result['served_gain'] / result['raw_gain']:.2f}",
        )
    console.print(gains)
