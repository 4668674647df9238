"""The command line of ``python -m bench.loadtest``, read into one frozen object."""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("build/loadtest")
_SPAN = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


def timespan(text: str) -> float:
    """Seconds in ``90``, ``30s``, ``2m``, ``1h30m`` (Locust's ``--run-time`` forms)."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    match = _SPAN.fullmatch(text)
    if not text or match is None:
        raise argparse.ArgumentTypeError(f"not a time span: {text!r} (e.g. 90, 30s, 2m, 1h30m)")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def levels(text: str) -> tuple[int, ...]:
    try:
        parsed = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"user counts separated by commas, got {text!r}") from None
    if not parsed or min(parsed) < 1:
        raise argparse.ArgumentTypeError(f"positive user counts, got {text!r}")
    return parsed


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a value within [0, 1], got {text}")
    return value


@dataclass(frozen=True)
class Options:
    target: str | None
    metrics_url: str | None
    models_dir: Path
    model: str
    similar_model: str
    users: int
    spawn_rate: float | None
    run_time_s: float
    sweep: tuple[int, ...]
    step_time_s: float
    processes: int
    out: Path
    texts_file: Path | None
    repeat_ratio: float
    texts_per_request: int
    long_sentences: int
    pooling: str
    grpc_tls: bool
    grpc_tls_ca: str
    bearer_token: str
    max_p99_ms: float | None
    max_error_ratio: float | None
    min_rps: float | None
    server_start_timeout_s: float
    server_args: tuple[str, ...]
    locust_args: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def load_s(self) -> float:
        """How long the load runs: the run time, or every level of a sweep."""
        return len(self.sweep) * self.step_time_s if self.sweep else self.run_time_s

    @property
    def peak_users(self) -> int:
        return max(self.sweep) if self.sweep else self.users


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m bench.loadtest",
        description="Load-test the service with Locust over gRPC and write a report in pictures.",
    )
    where = p.add_argument_group("what to load")
    where.add_argument("--target", help="HOST:PORT of a running server (default: start one)")
    where.add_argument("--metrics-url", help="its /metrics, e.g. http://HOST:9464/metrics")
    where.add_argument("--models-dir", type=Path, default=Path("models"), help="served repository")
    where.add_argument("--model", default="bert", help="model for Embed and FillMask")
    where.add_argument("--similar-model", default="", help="word2vec model for MostSimilar")
    where.add_argument(
        "--server-arg",
        action="append",
        default=[],
        dest="server_args",
        help="one more argument for `python -m service` (repeatable)",
    )
    where.add_argument(
        "--server-start-timeout", type=timespan, default=300.0, dest="server_start_timeout_s"
    )
    load = p.add_argument_group("load (Locust's own flags)")
    load.add_argument("--users", "-u", type=int, default=16, help="concurrent users")
    load.add_argument(
        "--spawn-rate", "-r", type=float, help="users started per second (default: all at once)"
    )
    load.add_argument(
        "--run-time", "-t", type=timespan, default=30.0, dest="run_time_s", help="e.g. 60s, 5m"
    )
    load.add_argument(
        "--sweep", type=levels, default=(), help="step through user counts, e.g. 1,4,16,64"
    )
    load.add_argument(
        "--step-time", type=timespan, default=30.0, dest="step_time_s", help="per level"
    )
    load.add_argument("--processes", type=int, default=1, help="Locust worker processes")
    load.add_argument(
        "--texts-file", type=Path, help="one text per line (default: held-out corpus)"
    )
    load.add_argument("--repeat-ratio", type=fraction, default=0.5, help="share of repeated texts")
    load.add_argument("--texts-per-request", type=int, default=1)
    load.add_argument("--long-sentences", type=int, default=4, help="sentences per long text")
    load.add_argument(
        "--pooling", default="default", choices=("default", "cls", "mean", "max", "none")
    )
    load.add_argument("--grpc-tls", action="store_true", help="TLS to --target")
    load.add_argument("--grpc-tls-ca", default="", help="PEM roots for TLS")
    load.add_argument("--bearer-token", default="", help="sent as 'authorization: Bearer'")
    load.add_argument(
        "--locust-arg",
        action="append",
        default=[],
        dest="locust_args",
        help="one more argument for Locust, e.g. --locust-arg=--weight-embed-stream=1",
    )
    gate = p.add_argument_group("SLO gate (the whole run; exit status 1 when one is missed)")
    gate.add_argument("--max-p99-ms", type=float, help="highest p99 latency")
    gate.add_argument("--max-error-ratio", type=fraction, help="highest failed share of requests")
    gate.add_argument("--min-rps", type=float, help="lowest requests per second")
    p.add_argument("--out", type=Path, help="report folder (default: build/loadtest/<timestamp>/)")
    p.add_argument(
        "--note",
        action="append",
        default=[],
        dest="notes",
        help="a line for the top of summary.md, e.g. what the model is (repeatable)",
    )
    return p


def parse(argv: list[str] | None = None) -> Options:
    p = parser()
    args = p.parse_args(argv)
    if args.metrics_url and not args.target:
        p.error("--metrics-url goes with --target (a server started here is scraped anyway)")
    for name in ("users", "processes", "texts_per_request", "long_sentences"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.run_time_s <= 0 or args.step_time_s <= 0:
        p.error("--run-time and --step-time must be positive")
    out = args.out or DEFAULT_OUT / time.strftime("%Y%m%d-%H%M%S")
    fields: dict[str, Any] = vars(args) | {"out": out}
    for repeated in ("server_args", "locust_args", "notes"):
        fields[repeated] = tuple(fields[repeated])
    return Options(**fields)
