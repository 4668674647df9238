"""The batching section: batch shapes from the measured cost model against filling to the
limits and against batch-1 serving, on short, long and mixed-length texts, in one run.

For each model, one server per mode (cost model on, off, ``max_batch_size`` 1) is driven by the
load process at N clients, one text per call, on each text set; the batch shapes formed are
recorded. Then, with the servers stopped:

* the cost table the server timed at warm-up is checked shape by shape against the raw engine
  (predicted against measured texts/s), so a constant or made-up table shows;
* the served gain (cost model over batch-1) is held against the best raw gain the table
  predicts over batch 1 at the same length: goal ``served gain ≥ max(1, best predicted) × 0.9``;
* padding efficiency (real / padded tokens) of the cost model's batches on mixed lengths of
  4–128 tokens (goal ≥ 0.85);
* served throughput over raw ONNX Runtime at batch 32 on the same short texts;
* at one client, served p50 minus the raw batch-1 p50 (goal ≤ 1 ms + ``max_queue_delay_ms``).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common.batches import BatchRecorder, Shape
from bench.common.load import run_load
from bench.common.raw import batch_times, newest_encoder, replay_measured
from bench.common.report import console, make_table, verdict
from bench.common.servers import Engine, bench_settings
from bench.common.stats import percentile
from service.background import background_server
from service.batching import CostTable
from service.config import Settings

GAIN_SLACK = 0.9
PADDING_GOAL = 0.85
BATCH32_SHAPE_TEXTS = 32
MODES: dict[str, dict[str, Any]] = {
    "cost": {"batching_cost_model": "on"},
    "fill": {},
    "single": {"max_batch_size": 1},
}
"""Settings of each mode over the section's base (cost model off)."""


def text_sets(sentences: list[str], directory: Path, seed: int = 0) -> dict[str, Path]:
    """Short (held-out sentences), long (four joined) and mixed (4–128 tokens) texts."""
    rng = random.Random(seed)
    words = " ".join(sentences).split()
    long = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences) - 4, 4)]
    mixed = []
    for _ in range(2000):
        count = rng.randint(2, 100)
        start = rng.randrange(0, len(words) - count)
        mixed.append(" ".join(words[start : start + count]))
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, texts in (("short", sentences), ("long", long), ("mixed", mixed)):
        paths[name] = directory / f"{name}.txt"
        paths[name].write_text("\n".join(texts) + "\n")
    return paths


def _settings(models_dir: Path, name: str, engine: Engine, mode: str) -> Settings:
    return bench_settings(
        models_dir, name, engine, **({"batching_cost_model": "off"} | MODES[mode])
    )


def _serve(
    settings: Settings, model: str, texts: Path, clients: int, seconds: float
) -> tuple[dict[str, Any], BatchRecorder, dict[str, Any] | None]:
    """Load at ``clients``; the batches formed; the cost table the server timed (if any)."""
    recorder = BatchRecorder()
    with background_server(settings, recorder.for_embed) as server:
        embedder = server.app.embedder
        table = None
        if embedder is not None:
            served = embedder.resolve(model, "")
            table = None if served.cost_table is None else served.cost_table.to_dict()
        load = run_load(server.target, model, texts, clients, seconds)
    return load, recorder, table


def _raw_rate(session: Any, spec: Any, shape: Shape, seconds: float) -> float:
    return replay_measured(session, spec, Counter({shape: 1_000_000}), seconds).throughput


def _raw_p50_ms(session: Any, spec: Any, length: int, runs: int = 200) -> float:
    """p50 of batch-1 runs at ``length``, in ms."""
    p50 = percentile(batch_times(session, spec, (1, length), runs), 0.50)
    assert p50 is not None
    return p50 * 1000


def bench_batching(
    models_dir: Path, name: str, sentences: list[str], clients: int, seconds: float, engine: Engine
) -> dict[str, Any]:
    texts = text_sets(sentences, Path("build/bench/batching"))
    result: dict[str, Any] = {"model": name, "runs": {}}
    tables: dict[str, Any] = {}
    recorders: dict[str, BatchRecorder] = {}
    for text_set in ("short", "long"):
        for mode in MODES:
            console.print(f"[bold]{name}[/bold]: {mode}, {text_set} texts, {clients} clients")
            load, recorder, table = _serve(
                _settings(models_dir, name, engine, mode), name, texts[text_set], clients, seconds
            )
            result["runs"][f"{mode} {text_set}"] = {
                "throughput": load["throughput"],
                "p50_ms": load["p50_ms"],
                "errors": load["errors"],
                "mean_batch": recorder.mean_batch,
                "efficiency": recorder.efficiency,
            }
            recorders[f"{mode} {text_set}"] = recorder
            if table is not None:
                tables[text_set] = table
    console.print(f"[bold]{name}[/bold]: cost model on mixed lengths; one client")
    mixed, mixed_recorder, _ = _serve(
        _settings(models_dir, name, engine, "cost"), name, texts["mixed"], clients, seconds
    )
    result["mixed_efficiency"] = mixed_recorder.efficiency
    result["mixed_throughput"] = mixed["throughput"]
    result["mixed_mean_batch"] = mixed_recorder.mean_batch
    one, _, _ = _serve(
        _settings(models_dir, name, engine, "cost"), name, texts["short"], 1, seconds
    )
    result["one_client_p50_ms"] = one["p50_ms"]
    result["max_queue_delay_ms"] = Settings().max_queue_delay_ms
    session, spec = newest_encoder(models_dir, name, engine)
    short_length = recorders["single short"].median_length
    result["raw_batch1_p50_ms"] = _raw_p50_ms(session, spec, short_length)
    result["raw_batch32"] = _raw_rate(session, spec, (BATCH32_SHAPE_TEXTS, short_length), seconds)
    result["served_over_raw_batch32"] = (
        result["runs"]["cost short"]["throughput"] / result["raw_batch32"]
    )
    checks = []
    table = tables.get("short")
    if table is not None:
        cost = CostTable.from_dict(table)
        budget = max(0.2, seconds / 20)
        for size in cost.batch_sizes:
            for length in cost.lengths:
                if (size, length) in cost.estimated:
                    continue
                checks.append(
                    {
                        "shape": [size, length],
                        "predicted": cost.texts_per_second(size, length),
                        "measured": _raw_rate(session, spec, (size, length), budget),
                    }
                )
        for text_set in ("short", "long"):
            length = recorders[f"single {text_set}"].median_length
            single = cost.texts_per_second(1, length)
            best = max(cost.texts_per_second(size, length) for size in cost.batch_sizes)
            gain = (
                result["runs"][f"cost {text_set}"]["throughput"]
                / result["runs"][f"single {text_set}"]["throughput"]
            )
            result[f"gain {text_set}"] = {
                "served": gain,
                "best_predicted": best / single,
                "goal": max(1.0, best / single) * GAIN_SLACK,
            }
    result["cost_checks"] = checks
    return result


def report_batching(results: list[dict[str, Any]]) -> None:
    runs = make_table(
        "batch shapes: cost model against filling the limits and batch-1",
        ("model", "mode", "texts", "texts/s", "p50 ms", "mean batch", "padding eff."),
    )
    for result in results:
        for key, run in result["runs"].items():
            mode, text_set = key.split()
            runs.add_row(
                result["model"],
                mode,
                text_set,
                f"{run['throughput']:.0f}",
                f"{run['p50_ms']:.1f}",
                f"{run['mean_batch']:.1f}",
                f"{run['efficiency']:.2f}",
            )
    console.print(runs)
    goals = make_table(
        "batching goals (each a ratio from this run)",
        ("model", "goal", "measured", "target", "verdict"),
    )
    for result in results:
        model = result["model"]
        for text_set in ("short", "long"):
            gain = result.get(f"gain {text_set}")
            if gain is not None:
                goals.add_row(
                    model,
                    f"served gain over batch-1, {text_set} "
                    f"(table's best {gain['best_predicted']:.2f}x)",
                    f"{gain['served']:.2f}x",
                    f"≥ {gain['goal']:.2f}x",
                    verdict(gain["served"] >= gain["goal"], "missed"),
                )
        goals.add_row(
            model,
            f"padding efficiency, mixed 4–128 (mean batch {result['mixed_mean_batch']:.1f})",
            f"{result['mixed_efficiency']:.2f}",
            f"≥ {PADDING_GOAL}",
            verdict(result["mixed_efficiency"] >= PADDING_GOAL, "missed"),
        )
        extra = result["one_client_p50_ms"] - result["raw_batch1_p50_ms"]
        limit = 1.0 + result["max_queue_delay_ms"]
        goals.add_row(
            model,
            "one client: served p50 − raw batch-1 p50",
            f"{extra:.2f} ms",
            f"≤ {limit:.1f} ms",
            verdict(extra <= limit, "missed"),
        )
        goals.add_row(
            model,
            "served (cost model, short) / raw at batch 32",
            f"{result['served_over_raw_batch32']:.2f}",
            "≥ 0.70 (4 × 256), ≥ 0.40 (default)",
            "-",
        )
    console.print(goals)
    checks = make_table(
        "cost table: predicted against measured raw texts/s, per measured shape",
        ("model", "batch × length", "predicted", "measured", "measured / predicted"),
    )
    for result in results:
        for check in result["cost_checks"]:
            size, length = check["shape"]
            checks.add_row(
                result["model"],
                f"{size} × {length}",
                f"{check['predicted']:.0f}",
                f"{check['measured']:.0f}",
                f"{check['measured'] / check['predicted']:.2f}",
            )
    console.print(checks)
