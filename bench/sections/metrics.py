"""The metrics section: the server CPU each request costs with metrics on against off.

Throughput alone cannot show a 3 % cost on a 2-core machine (run-to-run noise is larger), so
this counts the CPU the server spends per request. The servers run on threads of this process
and the load in a separate one, so this process's CPU time (``time.process_time``: user and
system, all threads) over a load window is the server's. The load driver prints a
line as each window's clients start and once all are answered; the clocks are read there, so
server start-up, warm-up and shutdown fall outside, and the window's responses divide its CPU.

Both servers (metrics on, metrics off) are started, warmed up and kept running side by side,
and one load process alternates short windows between them in ABBA order (on off off on ...)
over channels it holds open. The windows of a block are seconds apart, so drift and neighbours
on a shared machine (CPU frequency, a busy sibling hyperthread, other test runs) fall on both
arms alike; restarting servers or load per repeat would put start-up between the
windows of a block and leave time for fewer blocks. The idle server's background CPU falls in
every window of the other; it is measured apart (no load) and shown, to show it is negligible.
The window just after a switch of server costs more than one after the same server's, so the
overhead is taken per block of four windows (on off off on; see ``summarize``): its median over
blocks, with a sign-test interval, and the arms' own medians beside it.

The request is the cheapest the service answers, one sentence to the default word2vec (a
lookup on the worker pool, no batcher, no cache), where the per-request metrics (interceptor,
stage histograms) are the largest share. ONNX Runtime gets one intra-op thread: a lookup needs
no more, and idle spinning workers would add CPU that is only noise. ``control`` (``python -m
bench --sections metrics --metrics-control``) runs the same with metrics off on both servers:
an A/A check that the method itself finds no difference between the arms. Nothing scrapes
``/metrics`` meanwhile: this is the cost of recording, not of exposition.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common.load import run_alternating
from bench.common.models import WORD2VEC
from bench.common.paired import GAP_S, WindowClock, abba_blocks, block_differences, median_interval
from bench.common.report import console, make_table, verdict
from service.background import BackgroundServer, background_server
from service.config import Settings

MODEL = WORD2VEC
OVERHEAD_GOAL_PCT = 3.0
"""Server CPU per request with metrics on over off, in percent."""
CLIENTS = 16
"""Saturates the server as 64 do (word2vec has no batcher, so more clients batch nothing), with
less contention between load and server on 2 cores, so steadier windows."""
IDLE_S = 2.0
ARMS = ("on", "off")


@dataclass(frozen=True)
class Window:
    """One timed load window against one server."""

    arm: str
    cpu_s: float
    wall_s: float
    responses: int
    errors: int

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / max(1, self.responses) * 1e6

    @property
    def throughput(self) -> float:
        return self.responses / self.wall_s


def metrics_settings(models_dir: Path, metrics: bool) -> Settings:
    return Settings(
        models_dir=models_dir,
        models=[MODEL],
        port=0,
        metrics=metrics,
        metrics_port=0,
        intra_op_threads=1,
        log_level="warning",
        cache="off",
    )


def requests_counted(server: BackgroundServer) -> int | None:
    """Every request the server's ``embed_requests_total`` holds, or ``None`` without metrics."""
    metrics = server.app.metrics
    if metrics is None:
        return None
    return int(
        sum(
            sample.value
            for family in metrics.registry.collect()
            if family.name == "embed_requests"
            for sample in family.samples
            if sample.name == "embed_requests_total"
        )
    )


def idle_cpu(seconds: float) -> float:
    """This process's CPU per second with both servers up and no load."""
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def _pct(on: float, off: float) -> float:
    return (on - off) / off * 100


def bench_metrics(
    models_dir: Path,
    texts: Path,
    clients: int,
    seconds: float,
    blocks: int,
    control: bool = False,
) -> dict[str, Any]:
    """Both servers up at once; ``blocks`` ABBA blocks of windows; per-arm and block figures.
    With ``control`` the "on" server has metrics off too (A/A)."""
    clock = WindowClock()

    with (
        background_server(metrics_settings(models_dir, metrics=not control)) as on,
        background_server(metrics_settings(models_dir, metrics=False)) as off,
    ):
        idle = idle_cpu(IDLE_S)
        counted = requests_counted(on)
        console.print(
            f"[bold]{MODEL}[/bold]: {blocks} blocks of 4 windows of {seconds:g} s (on off off on), "
            f"{clients} clients"
        )
        targets = (on.target, off.target)
        load = run_alternating(targets, MODEL, texts, clients, seconds, 2 * blocks, GAP_S, clock)
        after = requests_counted(on)
    runs = [
        Window(
            arm=ARMS[index],
            cpu_s=cpu_s,
            wall_s=wall_s,
            responses=int(window["responses"]),
            errors=sum(window["errors"].values()),
        )
        for (index, cpu_s, wall_s), window in zip(clock.windows, load["windows"], strict=True)
    ]
    # The on-arm's metrics must have counted every call its load made (else the "on" arm did not
    # record what it claims); with ``control`` it has no metrics to count.
    uncounted = None if counted is None or after is None else after - counted - load["calls"][0]
    return summarize(runs, idle, clients, seconds, control, uncounted)


def summarize(
    runs: list[Window],
    idle_cpu_per_s: float,
    clients: int,
    seconds: float,
    control: bool,
    uncounted: int | None,
) -> dict[str, Any]:
    """Per-arm figures over all windows; the overhead per block of four (on off off on), where
    each arm has one window just after a switch of server and one after its own, and the block
    is symmetric in time: the switch's cost and linear drift cancel within it."""

    def arm_figures(arm: str) -> dict[str, Any]:
        mine = [run for run in runs if run.arm == arm]
        values = [run.cpu_us_per_request for run in mine]
        return {
            "throughput_median": statistics.median(run.throughput for run in mine),
            "cpu_us_per_request_median": statistics.median(values),
            "cpu_us_per_request_min": min(values),
            "cpu_us_per_request_max": max(values),
            "cpu_us_per_request": values,
            "throughput": [run.throughput for run in mine],
            "responses": [run.responses for run in mine],
            "errors": sum(run.errors for run in mine),
        }

    order = [ARMS.index(run.arm) for run in runs]
    per_request = [run.cpu_us_per_request for run in runs]
    cpu = abba_blocks(order, per_request)
    by_block = [_pct(on1 + on4, off2 + off3) for on1, off2, off3, on4 in cpu]
    overhead = statistics.median(by_block)
    low, high, coverage = median_interval(by_block)
    cost_us = statistics.median(block_differences(order, per_request))
    # The order effect the blocks cancel: on measured first in its pair (after its own server's
    # window) against on measured second (just after the switch from the off server).
    on_first = statistics.median(_pct(on1, off2) for on1, off2, _, _ in cpu)
    on_second = statistics.median(_pct(on4, off3) for _, _, off3, on4 in cpu)
    arms = {arm: arm_figures(arm) for arm in ARMS}
    errors = arms["on"]["errors"] + arms["off"]["errors"]
    return {
        "model": MODEL,
        "clients": clients,
        "seconds": seconds,
        "blocks": len(cpu),
        "control": control,
        "order": "blocks of four windows: on off off on",
        "statistic": "median over blocks of (on + on) / (off + off) - 1, CPU µs per request",
        "arms": arms,
        "idle_cpu_ms_per_s": idle_cpu_per_s * 1000,
        "block_overhead_pct": by_block,
        "overhead_pct": overhead,
        "overhead_interval_pct": [low, high],
        "overhead_interval_coverage": coverage,
        "cost_us_per_request": cost_us,
        "overhead_of_medians_pct": _pct(
            arms["on"]["cpu_us_per_request_median"], arms["off"]["cpu_us_per_request_median"]
        ),
        "overhead_on_first_pct": on_first,
        "overhead_on_second_pct": on_second,
        "goal_pct": OVERHEAD_GOAL_PCT,
        "goal_met": overhead < OVERHEAD_GOAL_PCT,
        "goal_clear": high < OVERHEAD_GOAL_PCT or low >= OVERHEAD_GOAL_PCT,
        "uncounted_requests": uncounted,
        "valid": not errors and uncounted == (None if control else 0),
    }


def report_metrics(result: dict[str, Any]) -> None:
    """One row per arm, then the overhead and its verdict."""
    table = make_table(
        f"cost of metrics: {result['model']}, one sentence per request, "
        f"{result['clients']} clients, {2 * result['blocks']} x {result['seconds']:g} s per arm, "
        "interleaved" + (" — A/A CONTROL: metrics off on both" if result["control"] else ""),
        (
            "metrics",
            "requests/s (median)",
            "server CPU µs/request (median)",
            "min",
            "max",
            "vs off (medians)",
            "errors",
        ),
    )
    for arm in ARMS:
        figures = result["arms"][arm]
        table.add_row(
            "off (A/A)" if result["control"] and arm == "on" else arm,
            f"{figures['throughput_median']:.0f}",
            f"{figures['cpu_us_per_request_median']:.1f}",
            f"{figures['cpu_us_per_request_min']:.1f}",
            f"{figures['cpu_us_per_request_max']:.1f}",
            f"{result['overhead_of_medians_pct']:+.2f} %" if arm == "on" else "-",
            str(figures["errors"] or "-"),
        )
    console.print(table)
    blocks = ", ".join(f"{value:+.1f}" for value in result["block_overhead_pct"])
    low, high = result["overhead_interval_pct"]
    console.print(
        f"server CPU overhead of metrics: {result['overhead_pct']:+.2f} % "
        f"({result['cost_us_per_request']:+.1f} µs/request), "
        f"{result['overhead_interval_coverage']:.0%} interval {low:+.1f} .. {high:+.1f} % "
        f"— goal < {result['goal_pct']:.0f} %: {verdict(result['goal_met'])}"
        + ("" if result["goal_clear"] else " (the interval straddles the goal: inconclusive)")
    )
    console.print(f"{result['statistic']}; blocks: {blocks} %")
    console.print(
        "order effect (cancelled within blocks): on measured first in its pair "
        f"{result['overhead_on_first_pct']:+.1f} %, "
        f"second {result['overhead_on_second_pct']:+.1f} %"
    )
    console.print(
        f"idle CPU of both servers (no load, in every window): "
        f"{result['idle_cpu_ms_per_s']:.2f} ms/s"
    )
    if not result["valid"]:
        console.print(
            "[red]invalid run: requests failed, or the metrics-on server did not count every "
            "request it served[/red]"
        )
