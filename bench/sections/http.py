"""The http section: the OpenAI-compatible HTTP API against gRPC Embed, on the same server.

Each model is served once, cache off, with both transports on; the one load driver sends the
same texts with the same number of clients (one text per call) over gRPC, then over HTTP with
JSON floats, then with base64, and the HTTP figures are read as a ratio of gRPC's texts/s. The
goal: at least ``GOALS[model]`` of gRPC on the default BERT (where the transport's cost shows)
and on a bert-base-shaped model (where the engine dominates). Then the transport's own cost:
server CPU per request (this process's CPU over the run, the server running on a thread of it)
for word2vec, whose lookup is nearly free, over each transport.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common.load import run_load
from bench.common.report import console, make_table, ms, verdict
from bench.common.servers import Engine, bench_settings
from service.background import background_server

GOALS = {"bert": 0.8, "bert-base-random": 0.95}
"""HTTP texts/s over gRPC's, per model (JSON floats and base64 alike)."""
CPU_MODEL = "word2vec"
ENCODINGS = ("float", "base64")


def _http_target(server: Any) -> str:
    assert server.app.http is not None, "the HTTP API is on"
    return f"127.0.0.1:{server.app.http.port}"


def bench_http(
    locations: dict[str, Path],
    models: list[str],
    texts: Path,
    clients: int,
    seconds: float,
    engine: Engine,
) -> dict[str, Any]:
    throughput: list[dict[str, Any]] = []
    for model in models:
        settings = bench_settings(locations[model], model, engine, http_port=0)
        with background_server(settings) as server:
            console.print(f"[bold]{model}[/bold]: gRPC Embed, {clients} clients, {seconds:.0f} s")
            runs = {"grpc": run_load(server.target, model, texts, clients, seconds)}
            for encoding in ENCODINGS:
                console.print(f"[bold]{model}[/bold]: HTTP /v1/embeddings, {encoding}")
                runs[encoding] = run_load(
                    _http_target(server), model, texts, clients, seconds, http=encoding
                )
        grpc = max(1e-9, runs["grpc"]["throughput"])
        goal = GOALS.get(model, 0.8)
        ratios = {encoding: runs[encoding]["throughput"] / grpc for encoding in ENCODINGS}
        throughput.append(
            {
                "model": model,
                "runs": runs,
                "ratios": ratios,
                "goal": goal,
                "met": all(ratio >= goal for ratio in ratios.values()),
            }
        )
    return {"throughput": throughput, "cpu": _cpu_per_request(locations, texts, clients, seconds)}


def _cpu_per_request(
    locations: dict[str, Path], texts: Path, clients: int, seconds: float
) -> dict[str, Any]:
    """Server CPU per word2vec request over gRPC and over HTTP (JSON floats), one server."""
    settings = bench_settings(locations[CPU_MODEL], CPU_MODEL, Engine(threads=1), http_port=0)
    per_request: dict[str, float] = {}
    with background_server(settings) as server:
        for name, target, http in (
            ("grpc", server.target, None),
            ("http", _http_target(server), "float"),
        ):
            console.print(f"[bold]{CPU_MODEL}[/bold]: server CPU per request over {name}")
            started = time.process_time()
            load = run_load(target, CPU_MODEL, texts, clients, seconds, http=http)
            spent = time.process_time() - started
            per_request[name] = spent / max(1, load["responses"]) * 1e6
    return {
        "model": CPU_MODEL,
        "grpc_us": per_request["grpc"],
        "http_us": per_request["http"],
        "http_over_grpc_us": per_request["http"] - per_request["grpc"],
    }


def report_http(result: dict[str, Any]) -> None:
    table = make_table(
        "HTTP /v1/embeddings against gRPC Embed (texts/s, same server, cache off)",
        ("model", "transport", "texts/s", "over gRPC", "p50 ms", "p99 ms", "errors"),
    )
    for entry in result["throughput"]:
        for name, run in entry["runs"].items():
            ratio = "-" if name == "grpc" else f"{entry['ratios'][name]:.2f}"
            label = "gRPC" if name == "grpc" else f"HTTP {name}"
            table.add_row(
                entry["model"],
                label,
                f"{run['throughput']:.0f}",
                ratio,
                ms(run["p50_ms"]),
                ms(run["p99_ms"]),
                str(run["errors"] or "-"),
            )
    console.print(table)
    for entry in result["throughput"]:
        console.print(
            f"{entry['model']}: HTTP / gRPC {entry['ratios']['float']:.2f} (float), "
            f"{entry['ratios']['base64']:.2f} (base64); goal >= {entry['goal']}: "
            f"{verdict(entry['met'])}"
        )
    cpu = result["cpu"]
    console.print(
        f"server CPU per {cpu['model']} request: gRPC {cpu['grpc_us']:.0f} µs, HTTP "
        f"{cpu['http_us']:.0f} µs ({cpu['http_over_grpc_us']:+.0f} µs for HTTP)"
    )
