"""The wire section: what each vector encoding costs to build and to read, CPU only.

For one 768-dim pooled vector and for ``POOLING_NONE`` at 128 tokens (128 × 768), the server's
side (``codec.embed_response`` and ``SerializeToString``) and the client's (``FromString`` and
``vectors``) are timed with ``timeit`` for ``repeated float`` and for raw little-endian float32
and float16 bytes, next to ``repeated float`` built from ``tolist()`` (Python floats), as the
codec once did. No server and no model: it runs in a few seconds.

    python -m bench --sections wire
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common.report import console, make_table
from proto.embedding.v1 import embedding_pb2 as pb
from service.client import vectors
from service.domain import EmbeddingResult, EmbedOutcome
from service.transport import codec

DIM = 768
TOKENS = 128
ENCODINGS: dict[str, pb.VectorEncoding | None] = {
    "repeated float, tolist()": None,
    "repeated float": pb.VECTOR_ENCODING_UNSPECIFIED,
    "float32 bytes": pb.VECTOR_ENCODING_FLOAT32,
    "float16 bytes": pb.VECTOR_ENCODING_FLOAT16,
}
TIMED_S = 0.05
"""Seconds of one timed run; the best of ``REPEATS`` runs is kept."""
REPEATS = 5


def seconds_per_call(function: Callable[[], object]) -> float:
    """The best per-call time over ``REPEATS`` runs of about ``TIMED_S`` each."""
    timer = timeit.Timer(function)
    once = max(timer.timeit(1), 1e-7)
    number = max(1, int(TIMED_S / once))
    return min(timer.repeat(REPEATS, number)) / number


def outcome(shape: tuple[int, ...]) -> EmbedOutcome:
    """One embedding of ``shape``: what the runtime hands the transport."""
    values = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tokens = tuple(f"t{index}" for index in range(shape[0] if len(shape) > 1 else 8))
    return EmbedOutcome([EmbeddingResult(values, tokens)], dim=DIM, model="bench", version=1)


def from_float_list(built: EmbedOutcome) -> pb.EmbedResponse:
    """The float form built from a list of Python floats, one object per value."""
    return pb.EmbedResponse(
        embeddings=[
            pb.Embedding(
                values=result.vectors.ravel().tolist(),
                num_tokens=len(result.tokens),
                tokens=result.tokens,
            )
            for result in built.results
        ],
        dim=built.dim,
        model=built.model,
        version=str(built.version),
        timing=codec.timing(built.timing),
    )


def measure(shape: tuple[int, ...], encoding: pb.VectorEncoding | None) -> dict[str, Any]:
    """``encoding`` None: the float form from ``tolist()``."""
    built = outcome(shape)

    def build() -> pb.EmbedResponse:
        if encoding is None:
            return from_float_list(built)
        return codec.embed_response(built, encoding)

    wire = build().SerializeToString()
    expected = built.results[0].vectors
    (decoded,) = vectors(pb.EmbedResponse.FromString(wire))
    tolerance = 1e-2 if encoding == pb.VECTOR_ENCODING_FLOAT16 else 0.0  # 11 bits, |x| < 5
    assert decoded.shape == expected.shape and np.allclose(decoded, expected, atol=tolerance)
    return {
        "bytes": len(wire),
        "encode_us": 1e6 * seconds_per_call(lambda: build().SerializeToString()),
        "decode_us": 1e6 * seconds_per_call(lambda: vectors(pb.EmbedResponse.FromString(wire))),
    }


def bench_wire() -> dict[str, Any]:
    shapes = {f"pooled ({DIM})": (DIM,), f"POOLING_NONE ({TOKENS} x {DIM})": (TOKENS, DIM)}
    rows = []
    for shape_name, shape in shapes.items():
        for name, encoding in ENCODINGS.items():
            rows.append({"shape": shape_name, "encoding": name, **measure(shape, encoding)})
    return {"rows": rows}


def report_wire(result: dict[str, Any]) -> None:
    table = make_table(
        "vector encodings: server builds + serialises, client parses + decodes",
        ("vector", "encoding", "bytes", "encode µs", "decode µs", "encode + decode"),
    )
    baseline: dict[str, dict[str, Any]] = {}
    for row in result["rows"]:
        base = baseline.setdefault(row["shape"], row)
        speedup = (base["encode_us"] + base["decode_us"]) / (row["encode_us"] + row["decode_us"])
        table.add_row(
            row["shape"],
            row["encoding"],
            f"{row['bytes']:,}",
            f"{row['encode_us']:.1f}",
            f"{row['decode_us']:.1f}",
            f"{speedup:.1f}x as fast as tolist()",
        )
    console.print(table)


if __name__ == "__main__":
    report_wire(bench_wire())
