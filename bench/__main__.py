"""``python -m bench`` (or ``make bench``): served vs raw throughput, dynamic batching vs batch-1,
the result cache's Redis hits vs misses, and the server CPU that metrics cost.

For each model it serves the repository in this process, drives it over gRPC from a separate
load process (N concurrent clients, one held-out sentence per call), records the batch shapes
the server formed, then times raw ONNX Runtime on exactly those shapes with the server stopped.
Everything is measured in one run, side by side:

* served / raw: the server's throughput at saturation over the engine's at the same batches;
* batching gain: dynamic batching over batch-1 serving at the same concurrency, next to the raw
  engine's own gain between the same two mixes of batch shapes.

These "serving" runs have the result cache off. The "cache" section (``bench.cache``) serves the
bert-base-shaped model from a private redis-server and compares Redis hits with misses:
throughput at the same load, and hit latency with 1 and with N clients. The "metrics" section
(``bench.metrics``) compares server CPU per word2vec request with metrics on and off, over
interleaved windows against two servers kept up side by side. The "precision" section
(``bench.precision``) serves the bert-base-shaped model as fp32 and as int8 and prints the
served throughput ratio next to the cosine between the two versions' embeddings.
The "stream" section (``bench.stream``) drives one EmbedStream with N messages in flight and N
unary clients against the same server and prints the throughput ratio; the "wire" section
(``bench.wire``, CPU only, seconds) times building and reading each vector encoding.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.floor import bench_floor, report_floor
from bench.load import run_load
from bench.metrics import CLIENTS as METRICS_CLIENTS
from bench.metrics import MODEL as METRICS_MODEL
from bench.metrics import bench_metrics, report_metrics
from bench.raw import Shape, encoder_session, replay
from bench.servers import Engine, bench_settings
from bench.shaping import bench_shaping, report_shaping
from modelrepo import ModelRepository, load_checked
from service.background import background_server
from service.config import Settings

console = Console(width=150)


@dataclass
class ShapeRecorder:
    """Batch observer that counts the (batch size, padded length) of every batch formed."""

    shapes: Counter[Shape] = field(default_factory=Counter)

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self.shapes[(batch_size, padded_tokens // batch_size)] += 1

    def on_dropped(self, reason: str, count: int) -> None:
        pass

    def on_executed(self, seconds: float) -> None:
        pass


def serve_and_load(
    settings: Settings, model: str, texts: Path, clients: int, seconds: float
) -> tuple[dict[str, Any], Counter[Shape]]:
    recorder = ShapeRecorder()
    with background_server(
        settings, lambda name: recorder if name.endswith(" embed") else None
    ) as server:
        load = run_load(server.target, model, texts, clients, seconds)
    return load, recorder.shapes


def mean_batch(shapes: Counter[Shape]) -> float:
    batches = sum(shapes.values())
    return sum(size * count for (size, _), count in shapes.items()) / max(1, batches)


def bench_model(
    models_dir: Path, name: str, texts: Path, clients: int, seconds: float, engine: Engine
) -> dict[str, Any]:
    settings = bench_settings(models_dir, name, engine)
    console.print(f"[bold]{name}[/bold]: dynamic batching, {clients} clients, {seconds:.0f} s")
    dynamic, dynamic_shapes = serve_and_load(settings, name, texts, clients, seconds)
    console.print(f"[bold]{name}[/bold]: batch-1 serving, {clients} clients, {seconds:.0f} s")
    single_settings = settings.model_copy(update={"max_batch_size": 1})
    single, single_shapes = serve_and_load(single_settings, name, texts, clients, seconds)
    console.print(f"[bold]{name}[/bold]: raw ONNX Runtime at the same batch shapes")
    repository = ModelRepository(models_dir)
    directory = repository.path(name, repository.newest(name) or 1)
    spec = load_checked(directory)
    session = encoder_session(directory, spec, engine)
    raw_dynamic = replay(session, spec, dynamic_shapes, budget_s=seconds)
    raw_single = replay(session, spec, single_shapes, budget_s=seconds)
    return {
        "model": name,
        "dynamic": dynamic,
        "single": single,
        "raw_dynamic": raw_dynamic,
        "raw_single": raw_single,
        "mean_batch_dynamic": mean_batch(dynamic_shapes),
        "served_over_raw": dynamic["throughput"] / raw_dynamic,
        "served_gain": dynamic["throughput"] / max(1e-9, single["throughput"]),
        "raw_gain": raw_dynamic / raw_single,
        "top_shapes": [
            [size, length, count] for (size, length), count in dynamic_shapes.most_common(5)
        ],
    }


def report(results: list[dict[str, Any]]) -> None:
    table = Table(title="served vs raw ONNX Runtime (texts/s)")
    for column in (
        "model",
        "mode",
        "served",
        "raw at same shapes",
        "served/raw",
        "p50 ms",
        "p99 ms",
        "mean batch",
        "errors",
    ):
        table.add_column(column)
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
    gains = Table(title="gain of dynamic batching over batch-1 at the same concurrency")
    for column in ("model", "served gain", "raw engine gain", "served / raw gain"):
        gains.add_column(column)
    for result in results:
        gains.add_row(
            result["model"],
            f"{result['served_gain']:.2f}x",
            f"{result['raw_gain']:.2f}x",
            f"{result['served_gain'] / result['raw_gain']:.2f}",
        )
    console.print(gains)


def write_texts(path: Path, seed: int) -> Path:
    from export.corpus import CorpusConfig, load_or_generate

    corpus = load_or_generate(Path("build/corpus"), CorpusConfig(seed=seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(corpus.heldout.sentences) + "\n")
    return path


SECTIONS = ("serving", "batching", "floor", "cache", "metrics", "precision", "stream", "wire")


def require_cuda() -> None:
    """Refuse ``--device cuda`` at once, before any model is built, where it cannot run."""
    import onnxruntime as ort

    from service.runtime.session import choose_providers

    choose_providers("cuda", ort.get_available_providers())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="what to measure (default: all)",
    )
    parser.add_argument(
        "--models-dir", type=Path, default=Path("models"), help="repository with the default models"
    )
    parser.add_argument(
        "--bench-models-dir",
        type=Path,
        default=Path("build/bench-models"),
        help="where the bert-base-shaped model is built",
    )
    parser.add_argument(
        "--models",
        nargs="*",
        default=["bert", "elmo", "bert-base-random"],
        help="models of the serving section",
    )
    parser.add_argument(
        "--batching-models",
        nargs="*",
        default=["bert", "bert-4x256-random"],
        help="models of the batching section (cost model against filling and batch-1)",
    )
    parser.add_argument(
        "--floor-models",
        nargs="*",
        default=["bert", "bert-4x256-random"],
        help="BERT models of the floor section (beside the floor and word2vec)",
    )
    parser.add_argument(
        "--floor-blocks",
        type=int,
        default=6,
        help="blocks of four alternating windows (word2vec, floor, floor, word2vec) of the "
        "floor section, each window a quarter of --seconds",
    )
    parser.add_argument(
        "--precision-model",
        default="bert-base-random",
        help="BERT of the precision section, served as fp32 and as its int8 variant",
    )
    parser.add_argument(
        "--stream-model",
        default="bert",
        help="model of the stream section: one EmbedStream with --clients messages in flight "
        "against --clients unary clients",
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: cores)"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where every server and raw session runs; cuda needs onnxruntime-gpu and a GPU, "
        "and makes the precision section compare fp16 (not int8) against fp32",
    )
    parser.add_argument(
        "--io-binding",
        choices=("auto", "on", "off"),
        default="auto",
        help="IOBinding of servers and raw sessions (auto: on CUDA only)",
    )
    parser.add_argument(
        "--cache-texts", type=int, default=2000, help="texts primed into Redis for the hit path"
    )
    parser.add_argument(
        "--metrics-seconds",
        type=float,
        default=1.5,
        help="measured seconds per window of the metrics section",
    )
    parser.add_argument(
        "--metrics-repeats",
        type=int,
        default=10,
        help="blocks of four windows (on off off on) of the metrics section",
    )
    parser.add_argument(
        "--metrics-clients",
        type=int,
        default=METRICS_CLIENTS,
        help="concurrent clients of the metrics section",
    )
    parser.add_argument(
        "--metrics-control",
        action="store_true",
        help="A/A check of the metrics section: both of its servers with metrics off",
    )
    parser.add_argument(
        "--json", type=Path, help="also write the results here, one key per section"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine = Engine(device=args.device, threads=args.threads, io_binding=args.io_binding)
    if engine.device == "cuda":
        try:
            require_cuda()
        except RuntimeError as error:
            console.print(f"[red]--device cuda: {error}[/red]")
            return 2
    console.print(
        f"engine: {engine.device}, threads {engine.threads or 'per core'}, "
        f"IOBinding {engine.io_binding}"
    )
    from bench.cache import MODEL as CACHE_MODEL
    from bench.cache import bench_cache, report_cache
    from bench.models import ensure_models
    from bench.redis_server import RedisUnavailable

    serving, cache = "serving" in args.sections, "cache" in args.sections
    metrics, floor = "metrics" in args.sections, "floor" in args.sections
    wanted = [
        *(args.models if serving else []),
        *([METRICS_MODEL, *args.floor_models] if floor else []),
        *(args.batching_models if "batching" in args.sections else []),
        *([CACHE_MODEL] if cache else []),
        *([METRICS_MODEL] if metrics else []),
        *([args.precision_model] if "precision" in args.sections else []),
        *([args.stream_model] if "stream" in args.sections else []),
    ]
    names = list(dict.fromkeys(wanted))
    locations = ensure_models(names, args.models_dir, args.bench_models_dir)
    texts = write_texts(Path("build/bench/texts.txt"), seed=13)
    results: dict[str, Any] = {"engine": dataclasses.asdict(engine)}
    if serving:
        results["serving"] = [
            bench_model(locations[name], name, texts, args.clients, args.seconds, engine)
            for name in args.models
        ]
        report(results["serving"])
    if "batching" in args.sections:
        sentences = texts.read_text().splitlines()
        results["batching"] = [
            bench_shaping(locations[name], name, sentences, args.clients, args.seconds, engine)
            for name in args.batching_models
        ]
        report_shaping(results["batching"])
    if floor:
        results["floor"] = bench_floor(
            locations,
            METRICS_MODEL,
            args.floor_models,
            texts,
            args.clients,
            args.seconds,
            engine,
            args.floor_blocks,
        )
        report_floor(results["floor"])
    if cache:
        try:
            results["cache"] = bench_cache(
                locations[CACHE_MODEL],
                texts,
                args.cache_texts,
                args.clients,
                args.seconds,
                engine,
            )
        except RedisUnavailable as error:
            console.print(f"[red]cache section: {error}[/red]")
            return 1
        report_cache(results["cache"])
    if metrics:
        results["metrics"] = bench_metrics(
            locations[METRICS_MODEL],
            texts,
            args.metrics_clients,
            args.metrics_seconds,
            args.metrics_repeats,
            args.metrics_control,
        )
        report_metrics(results["metrics"])
    if "precision" in args.sections:
        from bench.precision import bench_precision, report_precision

        results["precision"] = bench_precision(
            locations,
            args.precision_model,
            args.bench_models_dir,
            texts,
            args.clients,
            args.seconds,
            engine,
        )
        report_precision(results["precision"])
    if "stream" in args.sections:
        from bench.stream import bench_stream, report_stream

        results["stream"] = bench_stream(
            locations[args.stream_model],
            args.stream_model,
            texts,
            args.clients,
            args.seconds,
            engine,
        )
        report_stream(results["stream"])
    if "wire" in args.sections:
        from bench.wire import bench_wire, report_wire

        results["wire"] = bench_wire()
        report_wire(results["wire"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    sections_valid = (results.get(name, {}).get("valid", True) for name in ("cache", "metrics"))
    return 0 if all(sections_valid) else 1


if __name__ == "__main__":
    sys.exit(main())
