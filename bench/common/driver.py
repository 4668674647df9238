"""The one load driver: N concurrent gRPC callers, run as a process of its own (its CPU is not
the served process's, nor under its GIL). ``bench.common.load`` starts it from a section.

    python -m bench.common.driver load --target HOST:PORT --model bert --texts texts.txt \\
        --clients 64 --seconds 10 [--warmup 2] [--unique | --stream]
    python -m bench.common.driver alternate --targets HOST:A HOST:B --model word2vec \\
        --texts texts.txt --clients 16 --seconds 1.5 --pairs 20 --gap 0.2

``load``: ``--clients`` callers send one text per Embed call, each its next as soon as the last
is answered, for ``--warmup`` then ``--seconds``; one JSON line: texts answered in the measured
window, their rate, p50/p99, errors by status, and how many responses (warm-up included) had an
embedding that was not ``cached``. ``--unique`` makes every text one no cache has seen;
``--stream`` sends them over one EmbedStream that keeps ``--clients`` messages in flight;
``--http float|base64`` posts them to the HTTP API's ``/v1/embeddings`` instead (one keep-alive
connection per caller, each reply read and parsed as a client would).

``alternate``: one channel per server held open throughout; after a warm-up of each, pairs of
windows in ABBA order, each preceded by ``--gap`` seconds of the same load untimed. It prints
``window start I`` when a window's callers start and ``window end I`` once all are answered, so
the caller can read its clocks there; last, one JSON line: per window, the target, responses and
errors; per target, every call it got.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import grpc
import orjson

from bench.common.paired import abba
from bench.common.stats import latency_summary
from bench.common.texts import read_texts
from proto.embedding.v1 import embedding_pb2 as pb
from service.client import AsyncEmbeddingClient, embed_request

R = TypeVar("R")


class HttpFailed(Exception):
    """An HTTP reply other than 200."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def closed_loop(
    call: Callable[[int], Awaitable[R]],
    clients: int,
    until: float,
    on_reply: Callable[[R, float, float], None],
    period: float = 0.0,
) -> Counter[str]:
    """``clients`` callers until ``until`` (``time.perf_counter``): each awaits ``call(its
    index)`` again as soon as the last returned, or with ``period`` once per period at most
    (the callers' first calls spread over one period). ``on_reply(reply, sent, answered)`` per
    reply; the errors, by status."""
    errors: Counter[str] = Counter()

    async def one_client(index: int) -> None:
        due = time.monotonic() + index * period / clients
        while True:
            if period:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                due += period
            if (now := time.perf_counter()) >= until:
                return
            try:
                reply = await call(index)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
                continue
            except HttpFailed as error:
                errors[f"HTTP {error.status}"] += 1
                continue
            on_reply(reply, now, time.perf_counter())

    await asyncio.gather(*(one_client(index) for index in range(clients)))
    return errors


def unique_text(text: str, number: int) -> str:
    """``text`` with a case number before its final stop: still a plausible sentence, a few
    tokens longer, and no two texts of a run (hence no two cache keys) are the same."""
    body = text.rstrip()
    end = ""
    if body.endswith((".", "!", "?")):
        body, end = body[:-1].rstrip(), " " + body[-1]
    return f"{body} , case {number}{end}"


def text_source(texts: list[str], unique: bool) -> Iterator[str]:
    """The texts in a cycle; with ``unique``, each with its own counter."""
    if not unique:
        return itertools.cycle(texts)
    return (
        unique_text(text, number) for number, text in zip(itertools.count(), itertools.cycle(texts))
    )


async def load(
    target: str,
    model: str,
    texts: list[str],
    clients: int,
    seconds: float,
    warmup: float,
    unique: bool = False,
) -> dict[str, Any]:
    """Unary callers: latencies of the measured window; errors and responses of the whole."""
    latencies: list[float] = []
    responses = uncached = 0
    source = text_source(texts, unique)
    measuring_from = time.perf_counter() + warmup
    until = measuring_from + seconds
    async with AsyncEmbeddingClient(target, timeout=60, retries=0) as client:

        def replied(response: pb.EmbedResponse, sent: float, answered: float) -> None:
            nonlocal responses, uncached
            responses += 1
            uncached += not all(embedding.cached for embedding in response.embeddings)
            if sent >= measuring_from:
                latencies.append(answered - sent)

        errors = await closed_loop(
            lambda _: client.embed([next(source)], model=model), clients, until, replied
        )
    return {
        "clients": clients,
        **latency_summary(latencies, seconds, errors),
        "responses": responses,
        "uncached": uncached,
    }


async def load_http(
    target: str,
    model: str,
    texts: list[str],
    clients: int,
    seconds: float,
    warmup: float,
    encoding: str,
) -> dict[str, Any]:
    """Like ``load``, over the HTTP API: ``POST /v1/embeddings`` with ``encoding_format``."""
    import aiohttp  # only this mode needs it

    latencies: list[float] = []
    responses = 0
    source = text_source(texts, unique=False)
    url = f"http://{target}/v1/embeddings"
    measuring_from = time.perf_counter() + warmup
    until = measuring_from + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def call(_: int) -> Any:
            body = {"model": model, "input": [next(source)], "encoding_format": encoding}
            async with session.post(url, json=body) as reply:
                data = await reply.read()
                if reply.status != 200:
                    raise HttpFailed(reply.status)
            return orjson.loads(data)

        def replied(reply: Any, sent: float, answered: float) -> None:
            nonlocal responses
            responses += 1
            if sent >= measuring_from:
                latencies.append(answered - sent)

        errors = await closed_loop(call, clients, until, replied)
    return {
        "clients": clients,
        **latency_summary(latencies, seconds, errors),
        "responses": responses,
    }


async def stream(
    target: str, model: str, texts: list[str], outstanding: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """One EmbedStream that keeps ``outstanding`` messages unanswered (one text each), for
    ``warmup`` + ``seconds``; latencies of the messages sent in the measured window."""
    source = itertools.cycle(texts)
    slots = asyncio.Semaphore(outstanding)
    sent_at: deque[float] = deque()
    measuring_from = time.perf_counter() + warmup
    until = measuring_from + seconds
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def requests() -> AsyncIterator[pb.EmbedRequest]:
        while time.perf_counter() < until:
            await slots.acquire()
            sent_at.append(time.perf_counter())
            yield embed_request([next(source)], model)

    async with AsyncEmbeddingClient(target, timeout=warmup + seconds + 60, retries=0) as client:
        try:
            async for _ in client.embed_stream(requests()):
                done = time.perf_counter()
                started = sent_at.popleft()  # replies come in the order sent
                slots.release()
                if started >= measuring_from:
                    latencies.append(done - started)
        except grpc.aio.AioRpcError as error:
            errors[error.code().name] += 1
    return {"outstanding": outstanding, **latency_summary(latencies, seconds, errors)}


async def alternate(
    targets: list[str],
    model: str,
    texts: list[str],
    clients: int,
    seconds: float,
    pairs: int,
    gap: float,
    warmup: float,
) -> dict[str, Any]:
    """Windows alternating between ``targets`` in ABBA order, marked on stdout."""
    source = text_source(texts, unique=False)
    windows: list[dict[str, object]] = []
    calls = [0] * len(targets)
    async with AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(AsyncEmbeddingClient(target, timeout=60, retries=0))
            for target in targets
        ]

        async def window(index: int, seconds: float) -> tuple[int, Counter[str]]:
            responses = 0

            def replied(response: pb.EmbedResponse, sent: float, answered: float) -> None:
                nonlocal responses
                responses += 1

            until = time.perf_counter() + seconds
            client = channels[index]
            errors = await closed_loop(
                lambda _: client.embed([next(source)], model=model), clients, until, replied
            )
            calls[index] += responses + errors.total()
            return responses, errors

        # Last warmed is first measured: like every later window, it follows its own server's.
        for index in reversed(range(len(targets))):
            await window(index, warmup)
        for index in abba(pairs):
            await window(index, gap)
            print(f"window start {index}", flush=True)
            responses, errors = await window(index, seconds)
            print(f"window end {index}", flush=True)
            windows.append({"target": index, "responses": responses, "errors": dict(errors)})
    return {"clients": clients, "seconds": seconds, "windows": windows, "calls": calls}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m bench.common.driver")
    modes = parser.add_subparsers(dest="mode", required=True)
    steady = modes.add_parser(
        "load", allow_abbrev=False, help="one server, warm-up then one measured window"
    )
    steady.add_argument("--target", required=True, metavar="HOST:PORT")
    alternating = modes.add_parser(
        "alternate", allow_abbrev=False, help="windows alternating between two servers"
    )
    alternating.add_argument("--targets", nargs=2, required=True, metavar="HOST:PORT")
    for mode, clients, seconds, warmup in ((steady, 64, 10.0, 2.0), (alternating, 16, 1.5, 1.0)):
        mode.add_argument("--model", required=True)
        mode.add_argument("--texts", type=Path, required=True, help="one text per line")
        mode.add_argument("--clients", type=int, default=clients)
        mode.add_argument("--seconds", type=float, default=seconds, help="measured, per window")
        mode.add_argument("--warmup", type=float, default=warmup, help="untimed load first")
    kind = steady.add_mutually_exclusive_group()
    kind.add_argument("--unique", action="store_true", help="every text new to any cache")
    kind.add_argument("--stream", action="store_true", help="one stream, --clients in flight")
    kind.add_argument(
        "--http", choices=("float", "base64"), help="the HTTP API, with this encoding_format"
    )
    alternating.add_argument("--pairs", type=int, default=20)
    alternating.add_argument("--gap", type=float, default=0.2, help="untimed load per window")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    texts = read_texts(args.texts)
    common = (args.model, texts, args.clients, args.seconds)
    run: Coroutine[Any, Any, dict[str, Any]]
    if args.mode == "alternate":
        run = alternate(args.targets, *common, args.pairs, args.gap, args.warmup)
    elif args.stream:
        run = stream(args.target, *common, args.warmup)
    elif args.http:
        run = load_http(args.target, *common, args.warmup, args.http)
    else:
        run = load(args.target, *common, args.warmup, args.unique)
    print(json.dumps(asyncio.run(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
