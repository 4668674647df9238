"""``python -m bench.loadtest`` end to end: real Locust processes, real channels, a real server.

A two-level sweep against a server on a free port (Locust's count against the server's own
counter, the plots, a row per level), an SLO it cannot meet, the server killed mid-run, and the
command itself stopped mid-run: each ends by itself, in bounded time, with nothing left running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.loadtest.locust_files import read_stats
from service.metrics import Metrics
from tests.checkpoints import sentences
from tests.integration.harness import running_server
from tests.loadtest_files import REPO, processes_with, wait_for_processes

MODEL = "tiny-mlm"
PNGS = {
    "throughput_latency.png",
    "latency_over_time.png",
    "server_queue_inference.png",
    "server_batch_size.png",
    "server_padding_efficiency.png",
    "server_cache_hit_ratio.png",
}
LIMIT_S = 120


@pytest.fixture
def texts(tmp_path: Path) -> Path:
    """Sentences in the tiny model's vocabulary: the held-out corpus tokenizes to more than its
    128 positions, which FillMask (no truncation) refuses."""
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(sentences(200)) + "\n")
    return path


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "bench.loadtest", *map(str, args)]


def loadtest(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), cwd=REPO, capture_output=True, text=True, timeout=LIMIT_S, check=False
    )


def requests_by_method(metrics: Metrics) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "embed_requests_total":
                counts[sample.labels["method"]] += int(sample.value)
    return counts


def level_rows(summary: str) -> list[str]:
    """The users column of the per-level table."""
    return [
        line.split("|")[1].strip()
        for line in summary.splitlines()
        if re.match(r"\| \d+ \| \d+ \|", line)
    ]


def assert_nothing_left(*markers: str | Path) -> None:
    for marker in markers:
        left = wait_for_processes(str(marker), present=False, timeout_s=10)
        assert not left, f"left running: {left}"


def test_a_two_level_sweep_counts_what_the_server_counts(
    imported: dict[str, Path], texts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    with running_server(imported["models"], cache="on") as server:
        assert server.app.metrics is not None and server.app.metrics_port
        before = requests_by_method(server.app.metrics)
        done = loadtest(
            "--target", server.target,
            "--metrics-url", f"http://127.0.0.1:{server.app.metrics_port}/metrics",
            "--model", MODEL, "--sweep", "1,4", "--step-time", "4s",
            "--texts-file", texts, "--out", out,
            "--max-p99-ms", "60000", "--max-error-ratio", "0",
        )  # fmt: skip
        after = requests_by_method(server.app.metrics)
    assert done.returncode == 0, done.stdout + done.stderr
    stats = read_stats(out / "locust")
    assert stats.total.requests > 50 and stats.total.failures == 0 and not stats.failures
    methods = {method.name for method in stats.methods}
    assert methods == {"Embed", "FillMask"}
    counted = sum(after[method] - before[method] for method in methods)
    assert 0 <= counted - stats.total.requests <= 4, (counted, stats.total.requests)
    assert {path.name for path in out.glob("*.png")} == PNGS
    for png in out.glob("*.png"):
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 5000
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv"):
        assert (out / name).stat().st_size > 0
    assert "<html" in (out / "report.html").read_text()[:2000].lower()
    summary = (out / "summary.md").read_text()
    assert level_rows(summary) == ["1", "4"]
    assert "**PASS**" in summary and "within the 4 calls that can be in flight" in summary
    assert all(f"]({png})" in summary for png in PNGS)
    assert_nothing_left(out)


def test_an_impossible_slo_exits_non_zero_and_says_why(
    imported: dict[str, Path], texts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    done = loadtest(
        "--models-dir", imported["models"], "--model", MODEL, "--users", "2", "--run-time", "3s",
        "--texts-file", texts, "--out", out, "--max-p99-ms", "0.01",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    summary = (out / "summary.md").read_text()
    assert re.search(r"\*\*FAIL\*\*: p99 latency missed by [\d.]+ ms", summary), summary
    assert "SLO p99 latency" in done.stdout and "missed by" in done.stdout
    assert level_rows(summary) == ["2"]
    assert_nothing_left(out, imported["models"])


@contextmanager
def started(args: Sequence[str | Path]) -> Iterator[subprocess.Popen[str]]:
    """The command in the background; stopped (SIGTERM, then SIGKILL) if a check fails first."""
    run = subprocess.Popen(
        command(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield run
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)
            try:
                run.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                run.kill()
                run.communicate()


def wait_for_locust(out: Path) -> None:
    """Until Locust runs (``-m locust`` with the report folder) and has answered calls."""
    marker = f"--csv {out}/locust"
    assert wait_for_processes(marker, present=True, timeout_s=60), "Locust did not start"
    history = out / "locust_stats_history.csv"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= 3:
            return
        time.sleep(0.2)
    pytest.fail("Locust recorded nothing within 30 s")


def server_process(models: Path) -> int:
    (pid,) = [
        pid
        for pid, line in processes_with(str(models)).items()
        if "-m service" in line and "--models-dir" in line
    ]
    return pid


def test_killing_the_server_shows_failures_and_the_command_still_ends_clean(
    imported: dict[str, Path], texts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    arguments: list[str | Path] = [
        "--models-dir", imported["models"], "--model", MODEL, "--users", "4", "--run-time", "8s",
        "--texts-file", texts, "--out", out, "--max-error-ratio", "0.01",
    ]  # fmt: skip
    with started(arguments) as run:
        wait_for_locust(out)
        os.kill(server_process(imported["models"]), signal.SIGKILL)
        output, _ = run.communicate(timeout=LIMIT_S)
    assert run.returncode == 1, output
    failures = read_stats(out / "locust").failures
    assert failures and {failure.error for failure in failures} <= {"UNAVAILABLE", "CANCELLED"}
    assert any(f.error == "UNAVAILABLE" and f.occurrences > 0 for f in failures)
    summary = (out / "summary.md").read_text()
    assert "The server exited during the run" in summary and "error ratio missed by" in summary
    assert "| Embed | UNAVAILABLE |" in summary
    assert_nothing_left(out, imported["models"])


def test_stopping_the_command_stops_everything_it_started(
    imported: dict[str, Path], texts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    arguments: list[str | Path] = [
        "--models-dir", imported["models"], "--model", MODEL, "--users", "2", "--run-time", "60s",
        "--processes", "2", "--texts-file", texts, "--out", out,
    ]  # fmt: skip
    with started(arguments) as run:
        wait_for_locust(out)
        signalled = time.monotonic()
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
    assert run.returncode == 130, output
    assert time.monotonic() - signalled < 30 and "interrupted" in output
    assert_nothing_left(out, imported["models"])
