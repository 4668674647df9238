"""One load test from start to report: server (unless ``--target``), scrapes, Locust, report.

Exit status: 0 when the run completed and met every objective given, 1 when it missed one,
2 when it could not be run or measured (a server that did not start, Locust that failed or
recorded nothing, calls the server refused as INVALID_ARGUMENT: the load's own mistakes),
130 when interrupted. Whatever happens, every process started here is
ended before this returns.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from bench.common.texts import read_texts, write_heldout
from bench.loadtest import machine
from bench.loadtest.levels import all_levels, read_timeline, run_end, run_stats
from bench.loadtest.locust_files import read_stats
from bench.loadtest.locust_run import PREFIX, STOP_TIMEOUT_S, LocustOutcome, run_locust
from bench.loadtest.options import Options, parse
from bench.loadtest.plots import Plot, against_users, over_time, server_plots
from bench.loadtest.processes import Interrupted, raise_on_termination
from bench.loadtest.rpc import Connection, model_info, token_counts
from bench.loadtest.scrape import Scrape, Scraper, scrape_once
from bench.loadtest.server import Server, ServerError, start_server
from bench.loadtest.server_side import ServerFigures, providers, requests_seen, within
from bench.loadtest.server_side import over_time as server_over_time
from bench.loadtest.slo import objectives
from bench.loadtest.summary import CountCheck, Record, render
from bench.loadtest.texts import Lengths, lengths, long_texts
from proto.embedding.v1 import embedding_pb2 as pb

SAMPLE = 64
"""Texts of each kind tokenized for the summary's lengths."""
SUFFIX = ", case 123456789 1 ."
"""What a fresh text gets appended (the locustfile's form), to count its tokens."""


class RunError(RuntimeError):
    """The run could not be done or measured."""


@dataclass(frozen=True)
class Before:
    """What is known before the load starts (read before the first scrape)."""

    target: str
    metrics_url: str | None
    server_command: str | None
    info: pb.ModelInfo | None
    short: Lengths
    long: Lengths
    suffix_tokens: int | None


@dataclass(frozen=True)
class After:
    outcome: LocustOutcome
    baseline: Scrape | None
    scrapes: list[Scrape]
    final: Scrape | None
    scrape_failures: int
    server_exit: int | None


def _say(message: str) -> None:
    print(f"loadtest: {message}", flush=True)


def _texts(options: Options) -> tuple[Path, list[str]]:
    """The texts file for the locustfile, and its texts (checked before anything starts)."""
    path = options.texts_file or write_heldout(options.out / "texts.txt")
    texts = read_texts(path)
    if not texts:
        raise RunError(f"{path} holds no text")
    return path, texts


def _before(options: Options, server: Server | None, sentences: list[str]) -> Before:
    target = server.target if server else str(options.target)
    connection = Connection(target, options.grpc_tls, options.grpc_tls_ca, options.bearer_token)
    short, long = sentences[:SAMPLE], long_texts(sentences, options.long_sentences, SAMPLE)
    suffix = token_counts(connection, options.model, [short[0] + " " + SUFFIX, short[0]])
    return Before(
        target=target,
        metrics_url=server.metrics_url if server else options.metrics_url,
        server_command=" ".join(server.process.command[1:]) if server else None,
        info=model_info(connection, options.model),
        short=lengths(short, token_counts(connection, options.model, short)),
        long=lengths(long, token_counts(connection, options.model, long)),
        suffix_tokens=suffix[0] - suffix[1] if suffix else None,
    )


def _load(options: Options, before: Before, texts: Path) -> After:
    url = before.metrics_url
    baseline = scrape_once(url) if url else None
    scraper = Scraper(url, limit_s=options.load_s + 120) if url else None
    if scraper is not None:
        scraper.start()
    try:
        users = "user" if options.users == 1 else "users"
        what = f"sweep {options.sweep}" if options.sweep else f"{options.users} {users}"
        _say(f"Locust: {what} for {options.load_s:.0f} s against {before.target}")
        outcome = run_locust(options, before.target, texts, options.out)
    finally:
        if scraper is not None:
            scraper.stop()
    final = scrape_once(url) if url else None
    return After(
        outcome=outcome,
        baseline=baseline,
        scrapes=[*([baseline] if baseline else []), *(scraper.scrapes if scraper else [])],
        final=final,
        scrape_failures=scraper.failures if scraper else 0,
        server_exit=None,
    )


def _facts(
    options: Options, before: Before, after: After, locust_version: str
) -> list[tuple[str, str]]:
    info = before.info
    model = (
        f"{info.name}/{info.version} ({info.architecture}, dim {info.dim}, up to "
        f"{info.max_sequence_length} tokens; {', '.join(info.capabilities)})"
        if info is not None
        else f"{options.model} (the server gave no details)"
    )
    where = before.target + (
        f", started here: `python {before.server_command}`" if before.server_command else ""
    )
    if options.sweep:
        load = (
            f"sweep {', '.join(map(str, options.sweep))} users, {options.step_time_s:g} s per level"
        )
    else:
        rate = options.spawn_rate or options.users
        load = f"{options.users} users (spawned at {rate:g}/s) for {options.run_time_s:g} s"
    processes = f"{options.processes} worker processes" if options.processes > 1 else "1 process"
    extra = f"; Locust arguments {' '.join(options.locust_args)}" if options.locust_args else ""
    suffix = f" ({before.suffix_tokens} tokens)" if before.suffix_tokens is not None else ""
    texts = (
        f"{options.texts_file or 'held-out sentences of the default corpus'}; short (1 sentence): "
        f"{before.short.describe()}; long ({options.long_sentences} sentences): "
        f"{before.long.describe()}; {options.texts_per_request} text(s) per call; repeat ratio "
        f"{options.repeat_ratio:g}; fresh texts of cached models end in `, case <tag> <n> .`"
        f"{suffix}"
    )
    if info is not None and info.max_sequence_length:
        texts += (
            f"; beyond the model's {info.max_sequence_length} tokens Embed truncates, and "
            "FillMask sends only texts that fit (counted by Tokenize: see `locust.log`)"
        )
    facts = [
        (
            "model",
            model + (f"; MostSimilar on {options.similar_model}" if options.similar_model else ""),
        ),
        ("target", where),
        ("load", f"Locust {locust_version}, {load}, {processes}{extra}"),
        ("texts", texts),
        ("machine", machine.describe()),
    ]
    scrape = after.final or (after.scrapes[-1] if after.scrapes else None)
    if scrape is not None:
        facts.append(("server", f"ONNX Runtime providers: {providers(scrape)}"))
    return facts


def _notes(options: Options, before: Before, after: After) -> list[str]:
    notes = list(options.notes)
    if before.metrics_url is None:
        notes.append(
            "No `--metrics-url`: the server-side plots and columns are left out, and Locust's "
            "count is not checked against the server's."
        )
    elif after.scrape_failures or after.final is None or after.baseline is None:
        notes.append(
            f"{after.scrape_failures} scrapes of {before.metrics_url} failed during the run"
            + (
                "; so did the first or the last, so Locust's count is not checked against "
                "the server's."
                if after.final is None or after.baseline is None
                else "."
            )
        )
    if after.server_exit is not None:
        notes.append(f"The server exited during the run (status {after.server_exit}).")
    if after.outcome.timed_out:
        notes.append("Locust did not stop by itself in time: its processes were ended.")
    elif after.outcome.exit_code:
        notes.append(f"Locust exited with status {after.outcome.exit_code} (see `locust.log`).")
    return notes


def report(options: Options, before: Before, after: After) -> int:
    """Plots and summary.md from what the run left; the exit status of the gate."""
    out = options.out
    timeline_file = out / "timeline.json"
    if not timeline_file.exists() or not Path(f"{out / PREFIX}_stats.csv").exists():
        raise RunError(
            f"Locust wrote no results (exit status {after.outcome.exit_code}); its log, "
            f"{after.outcome.log}, ends with:\n" + _tail(after.outcome.log)
        )
    timeline = read_timeline(timeline_file)
    locust = read_stats(out / PREFIX)
    levels = all_levels(timeline)
    run = run_stats(timeline)
    origin = timeline.levels[0].start if timeline.levels else float(timeline.first or 0)
    end = run_end(timeline)
    plots: list[Plot] = []
    if len(levels) > 1:  # one level is one point: no curve to draw against users
        plots.append(against_users(levels, out / "throughput_latency.png"))
    plots.append(over_time(timeline, origin, end, out / "latency_over_time.png"))
    server_levels: list[ServerFigures | None] = [None for _ in levels]
    count_check = None
    if after.scrapes:
        # Intervals within the run: the last scrape also sees the users stopping.
        inside = [scrape for scrape in after.scrapes if scrape.at <= end]
        series = server_over_time(inside, options.model)
        plots += server_plots(series, timeline.levels, origin, out)
        server_levels = [
            within(after.scrapes, level.start, level.end, options.model) for level in levels
        ]
    if after.baseline is not None and after.final is not None:
        methods = tuple(method.name for method in locust.methods)
        seen = requests_seen(after.baseline, after.final, methods)
        in_flight = timeline.levels[-1].users if timeline.levels else options.peak_users
        count_check = CountCheck(locust.total.requests, int(seen), methods, in_flight)
    goals = objectives(run, options.max_p99_ms, options.max_error_ratio, options.min_rps)
    version = _version("locust")
    model = before.info.name if before.info is not None else options.model
    kind = "sweep" if options.sweep else "run"
    record = Record(
        title=f"Load test: {model}, {kind} against {before.target}",
        when=time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(origin or time.time())),
        facts=_facts(options, before, after, version),
        levels=levels,
        server_levels=list(server_levels),
        run=run,
        locust=locust,
        objectives=goals,
        count_check=count_check,
        plots=plots,
        notes=_notes(options, before, after),
        files=sorted(path.name for path in out.iterdir() if path.suffix in (".csv", ".html")),
    )
    (out / "summary.md").write_text(render(record))
    _say(f"report in {out / 'summary.md'}")
    for goal in goals:
        measured, limit = goal.describe(goal.measured), goal.describe(goal.limit)
        _say(f"SLO {goal.name}: {measured} against {limit}: {goal.verdict()}")
    if run.requests == 0:
        raise RunError("Locust recorded no calls at all")
    if run.invalid:
        raise RunError(
            f"{run.invalid} calls were refused as INVALID_ARGUMENT: the load's own requests "
            f"were wrong (see {out / 'locust.log'} and the failures in summary.md), so this run "
            "measured another load than the one asked for"
        )
    return 0 if all(goal.met for goal in goals) else 1


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def execute(options: Options) -> int:
    options.out.mkdir(parents=True, exist_ok=True)
    texts, sentences = _texts(options)
    with ExitStack() as stack:
        server = None
        if options.target is None:
            models = [options.model, *([options.similar_model] if options.similar_model else [])]
            _say(f"starting a server for {', '.join(models)} from {options.models_dir}")
            server = start_server(
                options.models_dir,
                models,
                options.server_args,
                options.out / "server.log",
                options.server_start_timeout_s,
            )
            stack.callback(server.process.stop, 10.0 + STOP_TIMEOUT_S)
            _say(f"server ready at {server.target} (metrics {server.metrics_url})")
        before = _before(options, server, sentences)
        after = _load(options, before, texts)
        if server is not None and server.process.poll() is not None:
            after = replace(after, server_exit=server.process.poll())
    return report(options, before, after)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    raise_on_termination()
    try:
        return execute(options)
    except (ServerError, RunError, OSError, ValueError) as error:
        print(f"loadtest: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as error:
        print(
            f"loadtest: interrupted ({error or 'SIGINT'}); every process was stopped",
            file=sys.stderr,
        )
        return 130
