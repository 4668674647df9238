"""The Locust process: ``python -m locust`` headless on the locustfile, bounded in time.

Locust runs in a process of its own (it patches the standard library with gevent and must not
share a process with the ``service`` package), from the repository root so that the locustfile
finds the generated stubs. It stops by itself at the end of its run time or of its sweep; if it
has not exited well after that, its whole process group is ended.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.loadtest.options import Options
from bench.loadtest.processes import ChildGroup
from bench.loadtest.server import free_port

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "deploy" / "loadtest" / "locustfile.py"
STOP_TIMEOUT_S = 10
"""At the end, users finish the call they are in (at most this long) before they stop, so
every call the server counted is one Locust counted too."""
MARGIN_S = 60.0
"""Start-up, the stop timeout, the final CSV write and the HTML report."""
PREFIX = "locust"


@dataclass(frozen=True)
class LocustOutcome:
    exit_code: int
    timed_out: bool
    wall_s: float
    log: Path


def command(options: Options, target: str, texts: Path, out: Path) -> list[str]:
    args = [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless",
        "--host", target,
        "--csv", str(out / PREFIX),
        "--csv-full-history",
        "--html", str(out / "report.html"),
        "--only-summary",
        "--stop-timeout", str(STOP_TIMEOUT_S),
        "--exit-code-on-error", "0",
        "--model", options.model,
        "--texts-file", str(texts),
        "--repeat-ratio", str(options.repeat_ratio),
        "--texts-per-request", str(options.texts_per_request),
        "--long-sentences", str(options.long_sentences),
        "--pooling", options.pooling,
        "--timeline", str(out / "timeline.json"),
    ]  # fmt: skip
    if options.similar_model:
        args += ["--similar-model", options.similar_model]
    if options.sweep:
        rate = options.spawn_rate or float(max(options.sweep))
        args += [
            "--sweep",
            ",".join(map(str, options.sweep)),
            "--step-time",
            f"{options.step_time_s}s",
        ]
        args += ["-r", str(rate)]
    else:
        rate = options.spawn_rate or float(options.users)
        args += [
            "-u",
            str(options.users),
            "-r",
            str(rate),
            "-t",
            f"{math.ceil(options.run_time_s)}s",
        ]
    if options.processes > 1:
        # Master and workers talk over a port of their own on loopback, not Locust's fixed
        # 5557 on every address, so two runs on one machine never collide.
        port = str(free_port())
        args += ["--processes", str(options.processes), "--master-bind-host", "127.0.0.1"]
        args += ["--master-bind-port", port, "--master-port", port]
    if options.grpc_tls:
        args.append("--grpc-tls")
    if options.grpc_tls_ca:
        args += ["--grpc-tls-ca", options.grpc_tls_ca]
    return args + list(options.locust_args)


def run_locust(options: Options, target: str, texts: Path, out: Path) -> LocustOutcome:
    """Run to the end; the log (Locust's own and its summary) goes to ``locust.log``."""
    log = out / "locust.log"
    started = time.monotonic()
    bound = options.load_s + MARGIN_S
    # The token goes by the environment: a command line is visible to every user of the machine.
    env = os.environ | (
        {"LOCUST_BEARER_TOKEN": options.bearer_token} if options.bearer_token else {}
    )
    with ChildGroup(command(options, target, texts, out), log, cwd=ROOT, env=env) as locust:
        code = locust.wait(bound)
        timed_out = code is None
        if code is None:
            code = locust.stop()
    return LocustOutcome(code, timed_out, time.monotonic() - started, log)
