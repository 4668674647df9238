"""``python -m bench.soak`` (``make soak``): a bounded, paced mixed load for minutes on end, to
catch what only time shows: memory or descriptors that leak, threads that pile up, latency that
drifts. On demand, never in CI.

It serves ``--models-dir`` in a process of its own (or drives ``--target``), and sends with the
bench's load driver, ``--workers`` callers paced to a fixed rate in all: Embed (half repeated
texts, cache hits; half fresh, misses), FillMask, MostSimilar, EmbedStream, and bad requests
(unknown model, empty texts, bad layers) that must fail with INVALID_ARGUMENT or NOT_FOUND.
Every ``--interval-s`` it samples the server's RSS, open file descriptors (/proc/PID/fd),
threads and the window's p99 latency into ``samples.csv``, then plots them (``soak.png``) and
writes ``summary.json`` and ``summary.md``.

Exit 1 when, after the warm-up, RSS grew by more than ``--max-rss-growth`` (10 %), p99 of the
last two windows is more than ``--max-p99-drift`` (20 %) above that of the first two, or a
request got a status it should not have.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench.common.driver import closed_loop
from bench.common.stats import percentile
from bench.loadtest.server import Server, start_server
from modelrepo import ModelRepository
from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc

TIMEOUT_S = 10.0
CACHE_MB = 1
"""The in-process cache tier of the soak's own server: small, so that it is full within the
warm-up and its bounded growth (fresh texts are misses, then entries) is not read as a leak."""
EXPECTED_BAD = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
WORDS = (
    "the cook peeled a mushy apple in the steamy kitchen . the technician charged a sleek apple "
    "in the flagship store . the river bank flooded after the storm , and the bank lent money ."
).split()


@dataclass(frozen=True)
class Plan:
    """The served models the load uses, found by asking the server (ListModels)."""

    contextual: str | None  # BERT or ELMo: cached embeddings
    fill_mask: str | None
    mask_token: str
    static: str | None  # word2vec: lookups and MostSimilar
    vocabulary: tuple[str, ...]


@dataclass
class Sample:
    elapsed_s: float
    rss_mib: float
    fds: int
    threads: int
    requests: int
    p99_ms: float
    p50_ms: float
    unexpected: int


@dataclass
class Window:
    """What the load driver recorded since the last sample (``lock``: the driver runs on a
    thread of its own)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_s: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    def take(self) -> tuple[list[float], list[str]]:
        with self.lock:
            latencies, self.latencies_s = self.latencies_s, []
            unexpected, self.unexpected = self.unexpected, []
        return latencies, unexpected


def proc_stats(pid: int) -> tuple[float, int, int]:
    """RSS in MiB, open descriptors and threads of ``pid`` (Linux /proc)."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss_kib = int(status["VmRSS"].split()[0])
    return rss_kib / 1024, len(os.listdir(f"/proc/{pid}/fd")), int(status["Threads"])


def discover(stub: Any, vocabulary_size: int = 200) -> Plan:
    models = stub.ListModels(pb.ListModelsRequest(), timeout=TIMEOUT_S).models
    contextual = next((m for m in models if m.architecture in ("bert", "elmo")), None)
    masked = next((m for m in models if "fill_mask" in m.capabilities), None)
    static = next((m for m in models if "most_similar" in m.capabilities), None)
    vocabulary: tuple[str, ...] = ()
    if static is not None:  # the static model's own words, so MostSimilar succeeds
        probe = pb.EmbedRequest(model=static.name, texts=[" ".join(WORDS)], skip_unknown=True,
                                pooling=pb.POOLING_NONE)  # fmt: skip
        tokens = stub.Embed(probe, timeout=TIMEOUT_S).embeddings[0].tokens
        vocabulary = tuple(dict.fromkeys(tokens))
    return Plan(
        contextual=contextual.name if contextual else None,
        fill_mask=masked.name if masked else None,
        mask_token=masked.mask_token if masked else "[MASK]",
        static=static.name if static else None,
        vocabulary=vocabulary[:vocabulary_size] or tuple(WORDS),
    )


def sentence(rng: random.Random, hot: bool) -> str:
    """A hot sentence (one of 64: cache hits after the first) or a fresh one (a miss)."""
    if hot:
        rng = random.Random(rng.randrange(64))
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))


Operation = tuple[str, float, Callable[[random.Random], Awaitable[Any]]]


def operations(stub: Any, plan: Plan) -> list[Operation]:
    """(name, weight, call) over an asyncio stub: the mix; a bad call must fail, a good one
    must not."""
    ops: list[Operation] = []
    if plan.contextual:
        name = plan.contextual
        ops.append(("embed", 4, lambda r: stub.Embed(pb.EmbedRequest(
            model=name, texts=[sentence(r, r.random() < 0.5) for _ in range(r.randint(1, 8))]),
            timeout=TIMEOUT_S)))  # fmt: skip

        async def stream(r: random.Random) -> int:
            requests = [pb.EmbedRequest(model=name, texts=[sentence(r, True)])
                        for _ in range(r.randint(2, 5))]  # fmt: skip
            return len([_ async for _ in stub.EmbedStream(iter(requests), timeout=TIMEOUT_S)])

        ops.append(("stream", 1, stream))
    if plan.fill_mask:
        masked, mask = plan.fill_mask, plan.mask_token
        ops.append(("fill_mask", 2, lambda r: stub.FillMask(pb.FillMaskRequest(
            model=masked, texts=[sentence(r, r.random() < 0.5).replace(" apple ", f" {mask} ", 1)
                                 + f" {mask} ."]), timeout=TIMEOUT_S)))  # fmt: skip
    if plan.static:
        static, words = plan.static, plan.vocabulary
        ops.append(("most_similar", 2, lambda r: stub.MostSimilar(pb.MostSimilarRequest(
            model=static, positive=r.sample(words, 2), top_k=10), timeout=TIMEOUT_S)))  # fmt: skip
        ops.append(("embed_static", 2, lambda r: stub.Embed(pb.EmbedRequest(
            model=static, texts=[" ".join(r.sample(words, 6))]), timeout=TIMEOUT_S)))  # fmt: skip
    any_model = plan.contextual or plan.static or ""
    ops.append(("bad", 1, lambda r: r.choice((
        lambda: stub.Embed(pb.EmbedRequest(model="no-such-model", texts=["x"]), timeout=TIMEOUT_S),
        lambda: stub.Embed(pb.EmbedRequest(model=any_model, texts=[]), timeout=TIMEOUT_S),
        lambda: stub.Embed(pb.EmbedRequest(model=any_model, texts=["x"], layers=[99]),
                           timeout=TIMEOUT_S),
    ))()))  # fmt: skip
    return ops


async def load(
    target: str, plan: Plan, window: Window, rate: float, workers: int, seconds: float
) -> None:
    """``workers`` callers of the load driver, each paced to ``rate / workers`` calls per
    second, for ``seconds``; every outcome into ``window``."""
    async with grpc.aio.insecure_channel(target) as channel:
        ops = operations(pb_grpc.EmbeddingServiceStub(channel), plan)
        names, weights, calls = zip(*ops, strict=True)
        rngs = [random.Random(seed) for seed in range(workers)]

        async def call(worker: int) -> tuple[str, str]:
            rng = rngs[worker]
            index = rng.choices(range(len(ops)), weights)[0]
            try:
                await calls[index](rng)
            except grpc.aio.AioRpcError as error:
                expected = names[index] == "bad" and error.code() in EXPECTED_BAD
                return names[index], "OK" if expected else error.code().name
            return names[index], "OK"

        def record(outcome: tuple[str, str], sent: float, answered: float) -> None:
            name, code = outcome
            with window.lock:
                window.codes[f"{name} {code}"] += 1
                if code != "OK":
                    window.unexpected.append(f"{name}: {code}")
                elif name != "bad":
                    window.latencies_s.append(answered - sent)

        until = time.perf_counter() + seconds
        await closed_loop(call, workers, until, record, period=workers / rate)


def _ms(seconds: float | None) -> float:
    return float("nan") if seconds is None else round(seconds * 1000, 2)


def verdict(
    samples: Sequence[Sample], warmup_s: float, max_rss_growth: float, max_p99_drift: float,
    unexpected: int,
) -> dict[str, Any]:  # fmt: skip
    """RSS growth: the last sample over the first after warm-up. p99 drift: the median window
    p99 of the last third of the run after warm-up over that of the first third (one window's
    p99 rests on a handful of calls; the median of several does not jump with one of them)."""
    steady = [index for index, s in enumerate(samples) if s.elapsed_s > warmup_s]
    if len(steady) < 4:
        return {"ok": False, "reason": "too few samples after warm-up (run longer)"}
    rss_base, rss_last = samples[steady[0]].rss_mib, samples[steady[-1]].rss_mib
    rss_peak = max(samples[index].rss_mib for index in steady)
    third = max(2, len(steady) // 3)
    p99_first = float(np.median([samples[index].p99_ms for index in steady[:third]]))
    p99_last = float(np.median([samples[index].p99_ms for index in steady[-third:]]))
    rss_growth = rss_last / rss_base - 1
    p99_drift = p99_last / p99_first - 1
    reasons = []
    if rss_growth > max_rss_growth:
        reasons.append(f"RSS grew {rss_growth:.1%} (limit {max_rss_growth:.0%})")
    if p99_drift > max_p99_drift:
        reasons.append(f"p99 drifted {p99_drift:+.1%} (limit {max_p99_drift:.0%})")
    if unexpected:
        reasons.append(f"{unexpected} requests got a status they should not have")
    return {
        "ok": not reasons,
        "reason": "; ".join(reasons) or "within limits",
        "rss_after_warmup_mib": round(rss_base, 1),
        "rss_last_mib": round(rss_last, 1),
        "rss_peak_mib": round(rss_peak, 1),
        "rss_growth": round(rss_growth, 4),
        "p99_first_ms": round(p99_first, 2),
        "p99_last_ms": round(p99_last, 2),
        "p99_drift": round(p99_drift, 4),
        "fds": [samples[steady[0]].fds, samples[steady[-1]].fds],
        "threads": [samples[steady[0]].threads, samples[steady[-1]].threads],
    }


def plot(samples: Sequence[Sample], warmup_s: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.elapsed_s / 60 for s in samples]
    series = [("RSS (MiB)", [s.rss_mib for s in samples]), ("open fds", [s.fds for s in samples]),
              ("threads", [s.threads for s in samples]),
              ("latency (ms): p99, p50", [s.p99_ms for s in samples])]  # fmt: skip
    figure, axes = plt.subplots(len(series), 1, sharex=True, figsize=(9, 9))
    for axis, (label, values) in zip(axes, series, strict=True):
        axis.plot(minutes, values, marker=".")
        axis.set_ylabel(label)
        axis.axvspan(0, warmup_s / 60, color="grey", alpha=0.2)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[-1].plot(minutes, [s.p50_ms for s in samples], marker=".")
    axes[-1].set_xlabel("minutes (grey: warm-up)")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="python -m bench.soak", description=summary
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--target", default="", help="drive this server instead of starting one")
    parser.add_argument("--pid", type=int, default=0, help="with --target: its process id, to "
                        "sample its RSS, descriptors and threads")  # fmt: skip
    parser.add_argument("--rate", type=float, default=40.0, help="calls per second, in all")
    parser.add_argument("--workers", type=int, default=8, help="concurrent callers")
    parser.add_argument("--interval-s", type=float, default=10.0, help="sampling period")
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=0.0,
        help="seconds before the baseline (default: 20 %% of the run, ≤ 120)",
    )
    parser.add_argument("--max-rss-growth", type=float, default=0.10)
    parser.add_argument("--max-p99-drift", type=float, default=0.20)
    parser.add_argument("--out", type=Path, default=None, help="default build/soak/<time>/")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for the server (repeatable)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out or Path("build/soak") / stamp
    out.mkdir(parents=True, exist_ok=True)
    duration_s = args.minutes * 60
    warmup_s = args.warmup_s or min(120.0, 0.2 * duration_s)
    server: Server | None = None
    if args.target:
        target, pid = args.target, args.pid or None
    else:
        names = ModelRepository(args.models_dir).names()
        extra = list(args.server_arg)
        if not any(arg.startswith("--cache-memory-mb") for arg in extra):
            extra += ["--cache-memory-mb", str(CACHE_MB)]
        server = start_server(args.models_dir, names, extra, out / "server.log", 300)
        target, pid = server.target, server.process.pid
    samples: list[Sample] = []
    window = Window()
    try:
        with grpc.insecure_channel(target) as channel:
            plan = discover(pb_grpc.EmbeddingServiceStub(channel))
        print(f"soak: {args.minutes} min against {target} (pid {pid}), {plan}", flush=True)
        driver = threading.Thread(
            target=asyncio.run,
            args=(load(target, plan, window, args.rate, args.workers, duration_s),),
            daemon=True,
        )
        driver.start()
        started = time.monotonic()
        unexpected_total = 0
        with (out / "samples.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(Sample.__dataclass_fields__))
            writer.writeheader()
            while (elapsed := time.monotonic() - started) < duration_s:
                time.sleep(min(args.interval_s, max(0.0, duration_s - elapsed)))
                batch, unexpected = window.take()
                unexpected_total += len(unexpected)
                for problem in unexpected[:3]:
                    print(f"  unexpected: {problem}", flush=True)
                rss, fds, threads_now = proc_stats(pid) if pid else (float("nan"), 0, 0)
                sample = Sample(
                    round(time.monotonic() - started, 1), round(rss, 1), fds, threads_now,
                    len(batch), _ms(percentile(batch, 0.99)), _ms(percentile(batch, 0.50)),
                    len(unexpected),
                )  # fmt: skip
                samples.append(sample)
                writer.writerow(asdict(sample))
                handle.flush()
                print(f"  {sample}", flush=True)
        driver.join(TIMEOUT_S + 5)
    finally:
        if server is not None:
            server.process.stop()
    result = verdict(samples, warmup_s, args.max_rss_growth, args.max_p99_drift,
                     unexpected_total)  # fmt: skip
    summary = {
        "minutes": args.minutes, "target": target, "models_dir": str(args.models_dir),
        "plan": asdict(plan) | {"vocabulary": len(plan.vocabulary)}, "rate": args.rate,
        "workers": args.workers, "warmup_s": warmup_s, "calls": dict(window.codes), **result,
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"soak: {args.minutes:g} min, {args.rate:g} calls/s, {result['reason']}"
    plot(samples, warmup_s, title, out / "soak.png")
    lines = [f"# Soak, {stamp}", "", f"- {title}", f"- models: {plan.contextual}, "
             f"{plan.fill_mask}, {plan.static} from `{args.models_dir}`"]  # fmt: skip
    lines += [f"- {key}: {value}" for key, value in result.items() if key != "ok"]
    lines += ["", "| call | count |", "| --- | --- |"]
    lines += [f"| {key} | {count} |" for key, count in sorted(window.codes.items())]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"soak: {'PASS' if result['ok'] else 'FAIL'}: {result['reason']}; {out}/", flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
