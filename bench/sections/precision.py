"""The precision section: int8 (on CPU) or fp16 (on CUDA) against fp32 served throughput of one
BERT, and their cosine.

The reduced version is made from the very checkpoint the fp32 version was imported from
(``bench.common.models.ensure_precision``). Each is served alone, cache off, and driven by the
same load driver (N clients, one held-out sentence per call); the reduced / fp32 ratio of texts
served per second is the section's figure (goal: at least 2x). In the same run both versions
are opened with the served runtime and the cosine of their mean-pooled embeddings of held-out
sentences is measured, so the speed and what it costs in accuracy come from one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common.load import run_load
from bench.common.models import ensure_precision, newest_directory
from bench.common.report import console, make_table, ms
from bench.common.servers import Engine, bench_settings
from bench.common.texts import read_texts
from export.bert.precision import DEFAULT_TEXTS, PrecisionPlan, compare_precision
from modelrepo import load_checked
from service.background import background_server
from service.runtime.bert import BertRuntime

GOAL_RATIO = 2.0
"""int8 served throughput over fp32's, at least this (fp16 on CUDA has no goal: its figure is
reported as measured)."""


def _runtime(directory: Path, engine: Engine) -> BertRuntime:
    return BertRuntime(
        directory,
        load_checked(directory),
        engine.session_options(),
    )


def bench_precision(
    locations: dict[str, Path],
    name: str,
    bench_models_dir: Path,
    texts: Path,
    clients: int,
    seconds: float,
    engine: Engine,
) -> dict[str, Any]:
    """Serve ``name`` and its reduced variant one after the other, then compare their
    vectors."""
    reduced = engine.precision
    variant, reduced_root = ensure_precision(name, reduced, locations[name], bench_models_dir)
    rows = []
    for model, root in ((name, locations[name]), (variant, reduced_root)):
        precision = load_checked(newest_directory(root, model)).precision
        console.print(f"precision: {model} ({precision}) served, {clients} clients")
        with background_server(bench_settings(root, model, engine)) as served:
            load = run_load(served.target, model, texts, clients, seconds)
        rows.append({"name": model, "precision": precision, **load})
    sentences = tuple(read_texts(texts)[: DEFAULT_TEXTS[reduced]])
    checks = compare_precision(
        _runtime(newest_directory(locations[name], name), engine),
        _runtime(newest_directory(reduced_root, variant), engine),
        PrecisionPlan(reduced, sentences),
    )
    ratio = rows[1]["throughput"] / max(1e-9, rows[0]["throughput"])
    return {
        "rows": rows,
        "ratio": ratio,
        "reduced": reduced,
        "goal_met": ratio >= GOAL_RATIO if reduced == "int8" else None,
        "cosine": checks["encoder"].model_dump(),
    }


def report_precision(result: dict[str, Any]) -> None:
    reduced = result["reduced"]
    table = make_table(
        f"{reduced} against fp32, served (one text per call)",
        ("model", "precision", "texts/s", "p50 ms", "p99 ms", "errors"),
    )
    for row in result["rows"]:
        table.add_row(
            row["name"],
            row["precision"],
            f"{row['throughput']:.0f}",
            ms(row["p50_ms"]),
            ms(row["p99_ms"]),
            str(row["errors"] or "-"),
        )
    console.print(table)
    cosine = result["cosine"]
    goal = result["goal_met"]
    verdict = (
        "no goal" if goal is None else f"goal ≥ {GOAL_RATIO:g}x: " + ("met" if goal else "missed")
    )
    console.print(
        f"{reduced} / fp32 served throughput: {result['ratio']:.2f}x ({verdict}); cosine to "
        f"fp32 of {cosine['output']} over {cosine['texts']} held-out texts: "
        f"min {cosine['min_cosine']:.4f}, mean {cosine['mean_cosine']:.4f}"
    )
