"""``python -m bench`` (or ``make bench``): served vs raw throughput, dynamic batching vs batch-1,
the result cache's Redis hits vs misses, and the server CPU that metrics cost.

For each model it serves the repository in this process, drives it over gRPC from a separate
load process (N concurrent clients, one held-out sentence per call), records the batch shapes
the server formed, then times raw ONNX Runtime on exactly those shapes with the server stopped.
Everything is measured in one run, side by side:

* served / raw: the server's throughput at saturation over the engine's at the same batches;
* batching gain: dynamic batching over batch-1 serving at the same concurrency, next to the raw
  engine's own gain between the same two mixes of batch shapes.

These "serving" runs have the result cache off. The other sections, one module each in
``bench.sections``: "batching" sets the cost model's batch shapes against filling the limits
and batch-1; "floor" holds server CPU per request against a bare gRPC servicer's; "cache"
serves the bert-base-shaped model from a private redis-server and compares Redis hits with
misses; "metrics" compares server CPU per word2vec request with metrics on and off, over
interleaved windows against two servers kept up side by side; "precision" serves the
bert-base-shaped model as fp32 and as int8 (fp16 on CUDA) and prints the throughput ratio next
to the cosine of their embeddings; "stream" drives one EmbedStream with N messages in flight
against N unary clients; "http" serves the OpenAI-compatible HTTP API beside gRPC and compares
their texts/s on the same server, and the server CPU per word2vec request of each; "sentence"
serves an all-MiniLM-L6-v2-shaped sentence-transformers folder against raw ONNX Runtime and
against sentence-transformers' own encode; "wire" (CPU
only, seconds) times building and reading each vector encoding. What they share (load driver,
batch recorder, raw replay) is in ``bench.common``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from bench.common.models import SENTENCE_MINILM as SENTENCE_MODEL
from bench.common.models import ensure_models
from bench.common.redis_server import RedisUnavailable
from bench.common.report import console
from bench.common.servers import Engine
from bench.common.texts import read_texts, write_heldout
from bench.sections.batching import bench_batching, report_batching
from bench.sections.cache import MODEL as CACHE_MODEL
from bench.sections.cache import bench_cache, report_cache
from bench.sections.floor import bench_floor, report_floor
from bench.sections.http import CPU_MODEL as HTTP_CPU_MODEL
from bench.sections.http import bench_http, report_http
from bench.sections.metrics import CLIENTS as METRICS_CLIENTS
from bench.sections.metrics import MODEL as METRICS_MODEL
from bench.sections.metrics import bench_metrics, report_metrics
from bench.sections.serving import bench_serving, report_serving
from bench.sections.stream import bench_stream, report_stream
from bench.sections.wire import bench_wire, report_wire

SECTIONS = (
    "serving", "batching", "floor", "cache", "metrics", "precision", "stream", "http",
    "sentence", "wire",
)  # fmt: skip


def require_cuda() -> None:
    """Refuse ``--device cuda`` at once, before any model is built, where it cannot run."""
    import onnxruntime as ort

    from service.runtime.session import choose_providers

    choose_providers("cuda", ort.get_available_providers())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
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
    parser.add_argument(
        "--http-models",
        nargs="*",
        default=["bert", "bert-base-random"],
        help="models of the http section: /v1/embeddings against gRPC Embed on one server",
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
        *([*args.http_models, HTTP_CPU_MODEL] if "http" in args.sections else []),
        *([SENTENCE_MODEL] if "sentence" in args.sections else []),
    ]
    names = list(dict.fromkeys(wanted))
    locations = ensure_models(names, args.models_dir, args.bench_models_dir)
    texts = write_heldout(Path("build/bench/texts.txt"))
    results: dict[str, Any] = {"engine": dataclasses.asdict(engine)}
    if serving:
        results["serving"] = [
            bench_serving(locations[name], name, texts, args.clients, args.seconds, engine)
            for name in args.models
        ]
        report_serving(results["serving"])
    if "batching" in args.sections:
        sentences = read_texts(texts)
        results["batching"] = [
            bench_batching(locations[name], name, sentences, args.clients, args.seconds, engine)
            for name in args.batching_models
        ]
        report_batching(results["batching"])
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
        # Imported here: it loads export's precision tooling (onnx), which no other section needs.
        from bench.sections.precision import bench_precision, report_precision

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
        results["stream"] = bench_stream(
            locations[args.stream_model],
            args.stream_model,
            texts,
            args.clients,
            args.seconds,
            engine,
        )
        report_stream(results["stream"])
    if "http" in args.sections:
        results["http"] = bench_http(
            locations, args.http_models, texts, args.clients, args.seconds, engine
        )
        report_http(results["http"])
    if "sentence" in args.sections:
        # Imported here: it loads sentence-transformers (torch), which no other section needs.
        from bench.sections.sentence import bench_sentence, report_sentence

        results["sentence"] = bench_sentence(
            locations[SENTENCE_MODEL], texts, args.clients, args.seconds, engine
        )
        report_sentence(results["sentence"])
    if "wire" in args.sections:
        results["wire"] = bench_wire()
        report_wire(results["wire"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    sections_valid = (results.get(name, {}).get("valid", True) for name in ("cache", "metrics"))
    return 0 if all(sections_valid) else 1


if __name__ == "__main__":
    sys.exit(main())
