"""What the report computes: levels, percentiles and stability, the SLO gate, server figures."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from bench.common.texts import read_texts, write_heldout
from bench.loadtest import levels, options, slo
from bench.loadtest.levels import Level, Second, Timeline
from bench.loadtest.locust_run import command
from bench.loadtest.scrape import increase, parse
from bench.loadtest.server_side import figures, requests_seen
from bench.loadtest.summary import CountCheck
from export.corpus import CorpusConfig, load_or_generate
from service.batching import BatcherKey
from service.domain import Timing
from service.metrics import Metrics
from tests.loadtest_files import REPO


def second(at: int, count: int, latency_ms: float, failures: int = 0) -> Second:
    return Second(at, count, failures, Counter({latency_ms: count}))


def steady(start: int, seconds: int, rate: int, latency_ms: float) -> dict[int, Second]:
    return {at: second(at, rate, latency_ms) for at in range(start, start + seconds)}


def test_percentiles_are_nearest_rank() -> None:
    latencies = Counter({1.0: 50, 2.0: 45, 10.0: 4, 100.0: 1})
    assert levels.percentile(latencies, 0.50) == 1.0
    assert levels.percentile(latencies, 0.95) == 2.0
    assert levels.percentile(latencies, 0.99) == 10.0
    assert levels.percentile(latencies, 1.0) == 100.0
    assert levels.percentile(Counter(), 0.5) is None


def test_a_level_is_measured_over_whole_seconds_after_its_ramp() -> None:
    timeline = Timeline(
        seconds=steady(100, 10, 50, 4.0) | {100: second(100, 7, 30.0)},
        levels=[Level(users=8, start=100.2, ready=100.6, end=109.5)],
    )
    (stats,) = levels.all_levels(timeline)
    assert (stats.start, stats.end, stats.measured_s) == (101, 109, 8)
    assert stats.requests == 8 * 50 and stats.rps == 50
    assert stats.p99_ms == 4.0, "the ramp's slow second is left out"


def test_a_level_is_stable_when_its_last_three_windows_agree_within_ten_percent() -> None:
    calm = [second(at, 100 + at % 3, 5.0) for at in range(30)]
    assert levels.stability(calm).stable
    drifting = [second(at, 100 + 4 * at, 5.0) for at in range(30)]
    verdict = levels.stability(drifting)
    assert not verdict.stable and "requests/s varied" in verdict.note
    slower = [second(at, 100, 5.0 if at < 25 else 7.0) for at in range(30)]
    verdict = levels.stability(slower)
    assert not verdict.stable and "mean latency varied" in verdict.note
    short = levels.stability(calm[:14])
    assert not short.stable and "need 15 s" in short.note


def test_the_whole_run_counts_every_call_ramps_included() -> None:
    timeline = Timeline(
        seconds={10: second(10, 10, 1.0, failures=1), 11: second(11, 30, 3.0)},
        levels=[Level(1, 10.0, 10.1, 11.0), Level(4, 11.0, 11.1, 12.0)],
    )
    run = levels.run_stats(timeline)
    assert (run.requests, run.failures, run.duration_s) == (40, 1, 2.0)
    assert run.rps == 20 and run.failure_ratio == 1 / 40
    assert run.p50_ms == 3.0


def test_the_gate_says_which_objective_missed_and_by_how_much() -> None:
    run = levels.RunStats(requests=1000, failures=20, duration_s=10, p50_ms=5, p95_ms=9, p99_ms=12)
    goals = slo.objectives(run, max_p99_ms=0.01, max_error_ratio=0.05, min_rps=200)
    by_name = {goal.name: goal for goal in goals}
    assert not by_name["p99 latency"].met
    assert by_name["p99 latency"].verdict() == "missed by 11.99 ms (1.2e+03x the limit)"
    assert by_name["error ratio"].met and by_name["error ratio"].verdict() == "met"
    assert not by_name["requests/s"].met
    assert by_name["requests/s"].verdict().startswith("missed by 100 req/s")
    assert slo.objectives(run, None, None, None) == []
    nothing = levels.RunStats(0, 0, 0, None, None, None)
    (p99,) = slo.objectives(nothing, 100, None, None)
    assert not p99.met and "nothing was measured" in p99.verdict()


def test_the_count_check_allows_the_calls_in_flight_at_the_end() -> None:
    assert CountCheck(100, 100, ("Embed",), 4).agrees
    assert CountCheck(100, 104, ("Embed",), 4).agrees
    assert not CountCheck(100, 105, ("Embed",), 4).agrees
    assert not CountCheck(100, 90, ("Embed",), 4).agrees


def test_server_figures_come_from_the_services_own_metrics() -> None:
    """Two expositions of the real ``Metrics`` registry, parsed as the scraper parses them."""
    metrics = Metrics()
    before = parse(generate_latest(metrics.registry).decode(), at=0.0)
    for code in ("OK", "OK", "UNAVAILABLE"):
        metrics.requests.labels("Embed", "bert", code).inc()
    metrics.requests.labels("GetModel", "bert", "OK").inc()
    observer = metrics.batcher(BatcherKey("bert", 1, "embed"))
    observer.on_batch(4, padded_tokens=40, real_tokens=30, queue_wait_s=[0.001] * 4)
    observer.on_batch(2, padded_tokens=20, real_tokens=20, queue_wait_s=[0.001] * 2)
    timing = Timing(queue_s=0.004, inference_s=0.002)
    metrics.observe_request("bert", "embed", timing, computed=1, cached=0)
    metrics.on_lookup("memory", hits=3, misses=1, errors=0, seconds=0.0)
    after = parse(generate_latest(metrics.registry).decode(), at=1.0)
    assert requests_seen(before, after, ("Embed", "FillMask")) == 3
    assert increase(before, after, "embed_requests_total", method="GetModel") == 1
    server = figures(before, after, "bert")
    assert server.batch_size == 3 and server.padding_efficiency == pytest.approx(0.875)
    assert server.queue_ms == pytest.approx(4.0) and server.inference_ms == pytest.approx(2.0)
    assert server.hit_ratio == 0.75 and server.tier_hit_ratios == {"memory": 0.75}
    assert figures(before, after, "elmo").batch_size is None


def test_the_command_line_and_the_locust_command_it_makes() -> None:
    parsed = options.parse(["--sweep", "1,4", "--step-time", "3s", "--model", "tiny"])
    assert parsed.sweep == (1, 4) and parsed.load_s == 6 and parsed.peak_users == 4
    assert parsed.target is None and parsed.out.parent == options.DEFAULT_OUT
    args = command(parsed, "127.0.0.1:1", options.DEFAULT_OUT / "texts.txt", parsed.out)
    assert args[args.index("--sweep") + 1] == "1,4" and "-t" not in args
    assert args[args.index("-r") + 1] == "4.0"
    plain = options.parse(
        ["--users", "3", "--run-time", "2.5s", "--locust-arg=--weight-fill-mask=0"]
    )
    args = command(plain, "127.0.0.1:1", plain.out / "texts.txt", plain.out)
    assert args[args.index("-t") + 1] == f"{math.ceil(2.5)}s", "Locust takes whole seconds"
    assert args[-1] == "--weight-fill-mask=0" and "--processes" not in args
    with pytest.raises(SystemExit):
        options.parse(["--metrics-url", "http://127.0.0.1:9464/metrics"])
    with pytest.raises(argparse.ArgumentTypeError):
        options.fraction("1.5")


def test_the_default_texts_are_the_default_corpus_held_out_sentences(tmp_path: Path) -> None:
    path = write_heldout(tmp_path / "texts.txt", corpus_dir=REPO / "build" / "corpus")
    written = read_texts(path)
    corpus = load_or_generate(REPO / "build" / "corpus", CorpusConfig())
    assert written == list(corpus.heldout.sentences) and len(written) > 1000
