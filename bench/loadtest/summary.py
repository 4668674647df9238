"""``summary.md``: one page with the verdict, the table per level, what ran where, and the plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.loadtest.levels import TOLERANCE, WINDOW_S, WINDOWS, LevelStats, RunStats
from bench.loadtest.locust_files import LocustStats
from bench.loadtest.plots import Plot
from bench.loadtest.server_side import ServerFigures
from bench.loadtest.slo import Objective


@dataclass(frozen=True)
class CountCheck:
    """Locust's request count against the server's ``embed_requests_total`` increase."""

    locust: int
    server: int
    methods: tuple[str, ...]
    in_flight: int

    @property
    def agrees(self) -> bool:
        return 0 <= self.server - self.locust <= self.in_flight

    def describe(self) -> str:
        methods = " + ".join(self.methods) or "no method"
        difference = self.server - self.locust
        text = (
            f"Locust counted {self.locust} calls; the server's `embed_requests_total` rose by "
            f"{self.server} ({methods}, every code): a difference of {difference:+d}"
        )
        if self.agrees:
            return text + f", within the {self.in_flight} calls that can be in flight at the end."
        return text + (
            f", **more than the {self.in_flight} calls in flight at the end**: calls failed "
            "before reaching the server (see the failures), or other clients used it."
        )


@dataclass(frozen=True)
class Record:
    title: str
    when: str
    facts: list[tuple[str, str]]
    levels: list[LevelStats]
    server_levels: list[ServerFigures | None]
    run: RunStats
    locust: LocustStats
    objectives: list[Objective]
    count_check: CountCheck | None
    plots: list[Plot]
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def verdict(objectives: Sequence[Objective], invalid: int = 0) -> str:
    """The headline: a load the server refused as invalid gets none on the SLO (it measured
    another load than the one asked for); a pass within 1 % of a limit says so."""
    if invalid:
        return (
            f"**INVALID LOAD**: {invalid} calls were refused as INVALID_ARGUMENT, requests the "
            "load test got wrong (see the failures), not errors of the server: they are left "
            "out of the error ratio, and the run ends with status 2, without a verdict."
        )
    if not objectives:
        return "**No SLO given** (`--max-p99-ms`, `--max-error-ratio`, `--min-rps`): nothing gated."
    missed = [objective for objective in objectives if not objective.met]
    if missed:
        names = "; ".join(f"{objective.name} {objective.verdict()}" for objective in missed)
        return f"**FAIL**: {names}."
    close = [objective for objective in objectives if objective.at_limit]
    if close:
        names = "; ".join(
            f"{objective.name} {objective.describe(objective.measured)} against a limit of "
            f"{objective.describe(objective.limit)}"
            for objective in close
        )
        return f"**PASS at the limit**: {names}: met with no margin left."
    return "**PASS**: every objective met."


def _objectives(objectives: Sequence[Objective]) -> list[str]:
    if not objectives:
        return []
    lines = [
        "## SLO (whole run)",
        "",
        "| objective | limit | measured | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for objective in objectives:
        sign = ">=" if objective.higher_is_better else "<="
        lines.append(
            f"| {objective.name} | {sign} {objective.describe(objective.limit)} "
            f"| {objective.describe(objective.measured)} | {objective.verdict()} |"
        )
    return [*lines, ""]


def _levels(levels: Sequence[LevelStats], server: Sequence[ServerFigures | None]) -> list[str]:
    lines = [
        "## Per concurrency level",
        "",
        "| users | measured s | requests | requests/s | p50 ms | p95 ms | p99 ms | failures "
        "| stable | queue ms | inference ms | batch | padding | cache hits |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for level, figures in zip(levels, server, strict=True):
        stable = ("yes" if level.stability.stable else "no") + f" ({level.stability.note})"
        lines.append(
            f"| {level.users} | {level.measured_s} | {level.requests} | {level.rps:.1f} "
            f"| {_ms(level.p50_ms)} | {_ms(level.p95_ms)} | {_ms(level.p99_ms)} "
            f"| {level.failure_ratio:.2%} | {stable} "
            f"| {_ms(figures.queue_ms if figures else None)} "
            f"| {_ms(figures.inference_ms if figures else None)} "
            f"| {_number(figures.batch_size if figures else None)} "
            f"| {_ratio(figures.padding_efficiency if figures else None)} "
            f"| {_ratio(figures.hit_ratio if figures else None)} |"
        )
    lines += [
        "",
        f"A level is measured over its whole seconds after every user started; it is stable when "
        f"its last {WINDOWS} windows of {WINDOW_S} s agree within {TOLERANCE:.0%} in requests/s "
        "and mean latency (as perf_analyzer decides). Failures are the server's: calls it "
        "refused as INVALID_ARGUMENT, the load's own mistakes, are left out. Server columns "
        "are means per request (queue, inference) or per batch (size, padding: real over "
        "padded tokens) of the model under load; cache hits are texts any tier answered over "
        "texts looked up.",
        "",
    ]
    return lines


def _run(record: Record) -> list[str]:
    run = record.run
    lines = [
        "## Whole run",
        "",
        f"{run.requests} calls in {run.duration_s:.1f} s ({run.rps:.1f}/s), "
        f"{run.failures} failed{_failed(run.invalid, run.failure_ratio)}; "
        f"p50 {_ms(run.p50_ms)} ms, "
        f"p95 {_ms(run.p95_ms)} ms, p99 {_ms(run.p99_ms)} ms.",
        "",
    ]
    methods = ", ".join(f"{m.name} {m.requests}" for m in record.locust.methods)
    lines += [f"Calls per method (Locust): {methods or 'none'}.", ""]
    if record.count_check is not None:
        lines += [record.count_check.describe(), ""]
    if record.locust.failures:
        lines += ["| method | failure (gRPC status) | occurrences |", "| --- | --- | ---: |"]
        lines += [f"| {f.name} | {f.error} | {f.occurrences} |" for f in record.locust.failures]
        lines.append("")
    return lines


def _failed(invalid: int, ratio: float) -> str:
    if not invalid:
        return f" ({ratio:.2%})"
    return (
        f", {invalid} of them refused as INVALID_ARGUMENT (the load's own mistakes); the "
        f"server's failure ratio without them: {ratio:.2%}"
    )


def render(record: Record) -> str:
    headline = verdict(record.objectives, record.run.invalid)
    lines = [f"# {record.title}", "", f"{record.when}. {headline}", ""]
    lines += ["| | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in record.facts]
    lines.append("")
    lines += [f"> {note}" for note in record.notes]
    if record.notes:
        lines.append("")
    lines += _objectives(record.objectives)
    lines += _levels(record.levels, record.server_levels)
    lines += _run(record)
    lines += ["## Plots", ""]
    lines += [f"![{plot.title}]({plot.file})" for plot in record.plots]
    lines.append("")
    if record.files:
        names = ", ".join(f"`{name}`" for name in record.files)
        lines += ["## Files", "", f"In the report folder: {names}.", ""]
    return "\n".join(lines)
