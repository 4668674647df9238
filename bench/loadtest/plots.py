"""The report's PNG plots (matplotlib's object API: no pyplot, no display, no global state).

Client side, from the timeline: throughput and p50/p95/p99 latency against users, one point
per level; throughput and latency second by second. Server side, from the scrapes: queue wait
against inference time, batch size, padding efficiency and cache hit ratio over time. Times
are seconds since the run began; the levels of a sweep are shaded in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.common.stats import percentile
from bench.loadtest.levels import Level, LevelStats, Timeline
from bench.loadtest.server_side import ServerFigures

DPI = 110
PERCENTILES = ((0.50, "p50"), (0.95, "p95"), (0.99, "p99"))


@dataclass(frozen=True)
class Plot:
    file: str
    title: str


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)


def _shade_levels(axes: Axes, levels: Sequence[Level], origin: float) -> None:
    """Every other level in grey, from the moment it was asked for to the next one."""
    for index, level in enumerate(levels):
        if index % 2 and level.end is not None:
            axes.axvspan(level.start - origin, level.end - origin, color="0.93", zorder=0)


def _empty(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="0.4")
    axes.set_xticks([])
    axes.set_yticks([])


def against_users(levels: Sequence[LevelStats], path: Path) -> Plot:
    figure = Figure(figsize=(10, 4))
    throughput, latency = figure.subplots(1, 2)
    users = [level.users for level in levels]
    throughput.plot(users, [level.rps for level in levels], marker="o")
    throughput.set(xlabel="users", ylabel="requests/s", title="throughput")
    for attribute, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        values = [getattr(level, attribute) for level in levels]
        latency.plot(
            users, [v if v is not None else float("nan") for v in values], marker="o", label=label
        )
    latency.set(xlabel="users", ylabel="ms", title="latency")
    latency.legend()
    for axes in (throughput, latency):
        if len(users) > 1 and max(users) >= 4 * min(users):
            axes.set_xscale("log", base=2)
        axes.set_xticks(users, [str(u) for u in users])
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    _save(figure, path)
    return Plot(path.name, "Throughput and latency against users")


def over_time(timeline: Timeline, origin: float, end: float, path: Path) -> Plot:
    """Each whole second of the run (from ``origin`` to ``end``), drawn at its middle: the
    partial seconds at either end would show a rate that is only the part's."""
    figure = Figure(figsize=(10, 6))
    rate, latency = figure.subplots(2, 1, sharex=True)
    seconds = [at for at in sorted(timeline.seconds) if origin <= at and at + 1 <= end]
    x = [at + 0.5 - origin for at in seconds]
    rate.plot(x, [timeline.seconds[at].count for at in seconds], label="requests/s")
    failures = [timeline.seconds[at].failures for at in seconds]
    if any(failures):
        rate.plot(x, failures, color="tab:red", label="failures/s")
    rate.set(ylabel="per second", title="throughput and latency, second by second")
    rate.legend(loc="upper left")
    users = rate.twinx()
    for level in timeline.levels:
        end = level.end if level.end is not None else (seconds[-1] + 1 if seconds else level.start)
        users.hlines(level.users, level.start - origin, end - origin, color="0.5", linestyles=":")
    users.set_ylabel("users (dotted)")
    users.set_ylim(bottom=0)
    for q, label in PERCENTILES:
        values = [percentile(timeline.seconds[at].latencies, q) for at in seconds]
        latency.plot(x, [v if v is not None else float("nan") for v in values], label=label)
    latency.set(xlabel="seconds since start", ylabel="ms")
    latency.legend(loc="upper left")
    for axes in (rate, latency):
        _shade_levels(axes, timeline.levels, origin)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    _save(figure, path)
    return Plot(path.name, "Throughput and latency over time")


Line = tuple[str, Callable[[ServerFigures], float | None]]
NO_BATCHES = "no batches (word2vec answers without batching)"


@dataclass(frozen=True)
class ServerPlot:
    file: str
    title: str
    ylabel: str
    empty: str
    """What to say when the run gave no value at all."""
    ratio: bool = False


SERVER_PLOTS = (
    ServerPlot(
        "server_queue_inference.png",
        "Server: queue wait against inference time",
        "ms per request (mean)",
        "no texts were queued (a static model, or every text was cached)",
    ),
    ServerPlot("server_batch_size.png", "Server: batch size", "texts per batch (mean)", NO_BATCHES),
    ServerPlot(
        "server_padding_efficiency.png",
        "Server: padding efficiency",
        "real / padded tokens (mean)",
        NO_BATCHES,
        ratio=True,
    ),
    ServerPlot(
        "server_cache_hit_ratio.png",
        "Server: cache hit ratio",
        "texts answered by a tier / looked up",
        "no cache lookups (cache off, or a model that is never cached)",
        ratio=True,
    ),
)


def _lines(file: str, tiers: Sequence[str]) -> list[Line]:
    if file == "server_queue_inference.png":
        return [("queue wait", lambda f: f.queue_ms), ("inference", lambda f: f.inference_ms)]
    if file == "server_batch_size.png":
        return [("batch size", lambda f: f.batch_size)]
    if file == "server_padding_efficiency.png":
        return [("padding efficiency", lambda f: f.padding_efficiency)]
    if len(tiers) <= 1:
        return [(tiers[0] if tiers else "cache", lambda f: f.hit_ratio)]
    return [("all tiers", lambda f: f.hit_ratio), *(_tier_line(tier) for tier in tiers)]


def _tier_line(tier: str) -> Line:
    return tier, lambda figures: figures.tier_hit_ratios.get(tier)


def _server_plot(
    spec: ServerPlot,
    series: Sequence[ServerFigures],
    lines: Sequence[Line],
    levels: Sequence[Level],
    origin: float,
    path: Path,
) -> Plot:
    figure = Figure(figsize=(10, 3.6))
    axes = figure.subplots()
    x = [figures.end - origin for figures in series]
    drawn = False
    for label, value in lines:
        values = [value(figures) for figures in series]
        if any(v is not None for v in values):
            axes.plot(x, [v if v is not None else float("nan") for v in values], label=label)
            drawn = True
    if drawn:
        _shade_levels(axes, levels, origin)
        axes.set(xlabel="seconds since start", ylabel=spec.ylabel)
        axes.set_ylim(0, 1.05 if spec.ratio else None)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right" if spec.ratio else "upper left")
    else:
        _empty(axes, spec.empty)
    axes.set_title(spec.title)
    _save(figure, path)
    return Plot(path.name, spec.title)


def server_plots(
    series: Sequence[ServerFigures], levels: Sequence[Level], origin: float, out: Path
) -> list[Plot]:
    tiers = sorted({tier for figures in series for tier in figures.tier_hit_ratios})
    return [
        _server_plot(spec, series, _lines(spec.file, tiers), levels, origin, out / spec.file)
        for spec in SERVER_PLOTS
    ]
