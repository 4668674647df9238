"""Property-based bad input over a real channel: every RPC and the stream get thousands of
generated requests (arbitrary Unicode, empty and huge texts, thousands of texts, unknown models
and versions, unknown enum values, bad layers and weights, extreme top_k, masks everywhere or
nowhere, undecodable bytes, streams that mix good and bad messages or are cancelled half-way).

Each answer is OK or one of the documented codes with a message; never INTERNAL or UNKNOWN
(except for bytes that are not the request message at all: gRPC answers those before any
handler runs, see README "Bad input and soak"), never a hang (every call has a timeout). The
server is a subprocess of its own, so its RSS is its own: after the suite it stays within 20 %
of its RSS after warm-up, and health still says SERVING.
"""

from __future__ import annotations

import functools
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from export.word2vec.exporter import import_word2vec
from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from tests.integration.server_process import ServerProcess
from tests.word2vec_files import save_c_formats, train_tiny_vectors

SERVICE = "/embedding.v1.EmbeddingService/"
TIMEOUT_S = 30.0
MIN_CASES = 5000
RSS_GROWTH = 1.20
DOCUMENTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
UNDECODABLE = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
"""What gRPC Python answers, before any handler, to bytes that are not the request message."""
MODELS = ("tiny-mlm", "tiny-encoder", "w2v")
UINT32_MAX = 2**32 - 1
INT32 = st.integers(-(2**31), 2**31 - 1)
CASES: dict[str, int] = {}
"""Requests sent per RPC, summed at the end (at least MIN_CASES)."""
OUTCOMES: Counter[str] = Counter()
"""Per RPC and status code, printed at the end: the mix must reach OK too, not only errors."""


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Fixed seed, no per-example deadline: a run is reproducible and CI-timed as a whole."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


# -- strategies --------------------------------------------------------------------------
def _no_surrogates(text: str) -> str:
    """Protobuf strings are UTF-8: a lone surrogate goes out as U+FFFD, as clients send it."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


SPECIALS = ("\x00", "\u202e", "\u200f", "\u200b", "\ufeff", "😀", "👩‍👩‍👧", "\ufffd",
            "[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]", " ", "\t\n", "apple", "bank", "the",
            ".", "\ud800", "x\udfffy", "\ud83d")  # fmt: skip
"""Hypothesis draws no surrogates itself; these lone ones go out as U+FFFD."""
WORD = st.one_of(st.sampled_from(SPECIALS), st.text(max_size=12)).map(_no_surrogates)
TEXT = st.one_of(
    st.text(max_size=40).map(_no_surrogates),
    st.lists(WORD, max_size=12).map(" ".join),
    st.lists(WORD, max_size=6).map("".join),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], tenths: int = 9) -> Any:
    """``good`` in ``tenths`` of the draws: each field is valid most of the time, so that a
    request with every field drawn is often valid as a whole and reaches the models."""
    return st.integers(0, 9).flatmap(lambda roll: good if roll < tenths else bad)


@st.composite
def texts(draw: st.DrawFn, masked: bool = False) -> list[str]:
    """Mostly a few texts; now and then none, a huge one, or thousands of them."""
    kind = draw(st.integers(0, 99))
    if kind < 3:
        return []
    if kind < 6:  # huge: far past any model's maximum length
        return [draw(st.sampled_from(("apple ", "[MASK] ", "😀", "x"))) * draw(
            st.integers(5_000, 60_000))]  # fmt: skip
    if kind < 8:  # thousands: past max_texts_per_request (1024) or just under it
        count = draw(st.sampled_from((1024, 1025, 3000)))
        return [draw(st.sampled_from(("bank", "[MASK] bank", "", "😀")))] * count
    chosen = draw(st.lists(TEXT, min_size=1, max_size=6))
    if masked:
        extra = draw(
            mostly(
                st.sampled_from((" [MASK]", " the [MASK] .", " [MASK] [MASK]")),
                st.sampled_from(("", "[MASK] " * 40, "[mask]", "[MASK]" * 200)),
                8,
            )
        )
        chosen = [text + extra for text in chosen]
    return chosen


NAME = st.one_of(st.sampled_from((*MODELS, "", "bert", "TINY-MLM", " tiny-mlm")),
                 st.text(max_size=20).map(_no_surrogates))  # fmt: skip
VERSION = st.one_of(
    st.sampled_from(("", "", "", "1", "2", "0", "-1", "01", "1.0", "²", "١", "9" * 5000, " 1")),
    st.text(max_size=8).map(_no_surrogates),
)
SERVED = st.sampled_from(MODELS)
MODEL = mostly(SERVED, NAME, 8)
GOOD_VERSION = mostly(st.sampled_from(("", "1")), VERSION)
FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from((float("nan"), float("inf"), float("-inf"), 0.0, 1.0, 3.4e38)),
)
ENUM = st.one_of(st.integers(0, 5), INT32)
TOP_K = st.one_of(st.integers(0, 1001), st.sampled_from((UINT32_MAX, 2**31, 1000, 1001)),
                  st.integers(0, UINT32_MAX))  # fmt: skip


@st.composite
def embed_requests(draw: st.DrawFn) -> pb.EmbedRequest:
    layers = draw(mostly(st.just([]), st.one_of(st.lists(st.integers(-2, 4), max_size=4),
                                                st.lists(INT32, max_size=3)), 8))  # fmt: skip
    weights = draw(mostly(st.just([]), st.lists(FLOAT, max_size=5)))
    return pb.EmbedRequest(
        model=draw(MODEL),
        version=draw(GOOD_VERSION),
        texts=draw(texts()),
        pooling=draw(mostly(st.sampled_from((0, 2, 3, 4)), ENUM)),
        layers=layers,
        layer_weights=weights,
        normalize=draw(st.booleans()),
        truncate=draw(st.booleans()),
        skip_unknown=draw(st.booleans()),
        cache_policy=draw(mostly(st.integers(0, 2), ENUM)),
    )


# -- the server ----------------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture(scope="module")
def fuzz_models(imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERTs (with and without an MLM head) and a tiny word2vec, in one repository."""
    root = tmp_path_factory.mktemp("fuzz")
    models = root / "models"
    shutil.copytree(imported["models"], models)
    files = save_c_formats(train_tiny_vectors(), root / "w2v")
    import_word2vec(files["binary"], True, models, "w2v")
    return models


@pytest.fixture(scope="module")
def fuzz_server(fuzz_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        ServerProcess]:  # fmt: skip
    log = tmp_path_factory.mktemp("fuzz-log") / "server.log"
    args = ["--cache-memory-mb", "4", "--grace-period-s", "2"]
    with ServerProcess(sys.executable, fuzz_models, log, args).start() as server:
        yield server


@pytest.fixture(scope="module")
def channel(fuzz_server: ServerProcess) -> Iterator[grpc.Channel]:
    options = [("grpc.max_receive_message_length", 256 * 2**20),
               ("grpc.max_send_message_length", 256 * 2**20)]  # fmt: skip
    with grpc.insecure_channel(fuzz_server.target, options=options) as opened:
        grpc.channel_ready_future(opened).result(timeout=30)
        yield opened


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> Any:
    return pb_grpc.EmbeddingServiceStub(channel)


def answer(method: str, call: Callable[[], object]) -> grpc.StatusCode:
    """The call's status; OK or documented with a message, or the test fails."""
    CASES[method] = CASES.get(method, 0) + 1
    try:
        call()
    except grpc.RpcError as error:
        code, details = error.code(), error.details()
        assert code in DOCUMENTED, f"{method}: {code} {details!r}"
        assert details, f"{method}: {code} without a message"
        OUTCOMES[f"{method} {code.name}"] += 1
        return code
    OUTCOMES[f"{method} OK"] += 1
    return grpc.StatusCode.OK


# -- warm-up and the RSS baseline ----------------------------------------------------------
@pytest.fixture(scope="module")
def baseline_rss(fuzz_server: ServerProcess, stub: Any) -> int:
    """RSS after a warm-up that sends the largest shapes the suite sends, twice."""
    assert fuzz_server.process is not None
    big = ["apple bank " * 60] * 1024
    for _ in range(2):
        for model in MODELS:
            for pooling in (pb.POOLING_UNSPECIFIED, pb.POOLING_NONE):
                request = pb.EmbedRequest(model=model, texts=big, pooling=pooling, truncate=True,
                                          skip_unknown=True)  # fmt: skip
                answer("warmup", functools.partial(stub.Embed, request, timeout=TIMEOUT_S))
            tokenize = pb.TokenizeRequest(model=model, texts=["x" * 60_000] * 4)
            answer("warmup", functools.partial(stub.Tokenize, tokenize, timeout=TIMEOUT_S))
        for masks, count, top_k in ((1, 1024, 90), (120, 8, 100)):  # the bound: 100,000
            fill = pb.FillMaskRequest(model="tiny-mlm", texts=["[MASK] " * masks] * count,
                                      top_k=top_k)  # fmt: skip
            answer("warmup", functools.partial(stub.FillMask, fill, timeout=TIMEOUT_S))
        answer(
            "warmup",
            lambda: stub.MostSimilar(
                pb.MostSimilarRequest(model="w2v", positive=["bank"], top_k=1000), timeout=TIMEOUT_S
            ),
        )
    return rss_kib(fuzz_server.process.pid)


# -- the properties ------------------------------------------------------------------------
@fuzz(1500)
@given(request=embed_requests())
def test_embed(stub: Any, baseline_rss: int, request: pb.EmbedRequest) -> None:
    answer("Embed", lambda: stub.Embed(request, timeout=TIMEOUT_S))


@fuzz(900)
@given(model=mostly(st.just("tiny-mlm"), MODEL, 8), version=GOOD_VERSION,
       chosen=texts(masked=True), top_k=mostly(st.integers(0, 20), TOP_K, 8),
       policy=mostly(st.integers(0, 2), ENUM))  # fmt: skip
def test_fill_mask(
    stub: Any, baseline_rss: int, model: str, version: str, chosen: list[str], top_k: int,
    policy: int,
) -> None:  # fmt: skip
    request = pb.FillMaskRequest(model=model, version=version, texts=chosen, top_k=top_k,
                                 cache_policy=policy)  # type: ignore[arg-type]  # fmt: skip
    answer("FillMask", lambda: stub.FillMask(request, timeout=TIMEOUT_S))


KNOWN = st.sampled_from(("apple", "bank", "river", "money", "the", "."))
WORDS = mostly(st.lists(KNOWN, max_size=3), st.lists(st.one_of(WORD, KNOWN), max_size=6), 8)


@fuzz(700)
@given(
    model=mostly(st.just("w2v"), MODEL, 8),
    version=GOOD_VERSION,
    positive=WORDS,
    negative=WORDS,
    many=st.integers(0, 30),
    top_k=mostly(st.integers(0, 50), TOP_K, 8),
)
def test_most_similar(
    stub: Any, baseline_rss: int, model: str, version: str, positive: list[str],
    negative: list[str], many: int, top_k: int,
) -> None:  # fmt: skip
    if many == 0:  # thousands of query words: past the limit
        positive = positive + ["bank"] * 1100
    request = pb.MostSimilarRequest(model=model, version=version, positive=positive,
                                    negative=negative, top_k=top_k)  # fmt: skip
    answer("MostSimilar", lambda: stub.MostSimilar(request, timeout=TIMEOUT_S))


@fuzz(700)
@given(model=MODEL, version=GOOD_VERSION, chosen=texts(masked=True))
def test_tokenize(
    stub: Any, baseline_rss: int, model: str, version: str, chosen: list[str]
) -> None:
    request = pb.TokenizeRequest(model=model, version=version, texts=chosen)
    answer("Tokenize", lambda: stub.Tokenize(request, timeout=TIMEOUT_S))


@fuzz(300)
@given(model=MODEL, version=GOOD_VERSION)
def test_get_and_list_models(stub: Any, baseline_rss: int, model: str, version: str) -> None:
    code = answer("GetModel", lambda: stub.GetModel(
        pb.GetModelRequest(model=model, version=version), timeout=TIMEOUT_S))  # fmt: skip
    if model in MODELS and version in ("", "1"):
        assert code == grpc.StatusCode.OK
    answer("ListModels", lambda: stub.ListModels(pb.ListModelsRequest(), timeout=TIMEOUT_S))


GOOD = pb.EmbedRequest(model="tiny-encoder", texts=["the river bank"])


@fuzz(300)
@given(messages=st.lists(st.one_of(st.just(GOOD), embed_requests()), max_size=6),
       cancel_after=st.one_of(st.none(), st.integers(0, 3)))  # fmt: skip
def test_stream(
    stub: Any, baseline_rss: int, messages: list[pb.EmbedRequest], cancel_after: int | None
) -> None:
    """Good and bad messages mixed; replies come in order up to the first bad one, which ends
    the stream with its status. With ``cancel_after``, the client cancels after that many
    replies (of good messages sent first)."""
    if cancel_after is not None:
        messages = [GOOD] * (cancel_after + 1) + messages
    call = stub.EmbedStream(iter(messages), timeout=TIMEOUT_S)
    CASES["EmbedStream"] = CASES.get("EmbedStream", 0) + 1
    replies = 0
    try:
        for _ in call:
            if cancel_after is not None and replies == cancel_after:
                call.cancel()
            replies += 1
    except grpc.RpcError as error:
        if cancel_after is not None and error.code() == grpc.StatusCode.CANCELLED:
            return
        assert error.code() in DOCUMENTED, (error.code(), error.details())
        assert error.details()
        return
    assert replies == len(messages)


def _decodes(method: str, payload: bytes) -> bool:
    kind: type[Message] = {"Embed": pb.EmbedRequest, "FillMask": pb.FillMaskRequest,
            "MostSimilar": pb.MostSimilarRequest, "Tokenize": pb.TokenizeRequest,
            "ListModels": pb.ListModelsRequest, "GetModel": pb.GetModelRequest}[method]  # fmt: skip
    try:
        kind().ParseFromString(payload)
    except DecodeError:
        return False
    return True


@fuzz(600)
@given(method=st.sampled_from(("Embed", "FillMask", "MostSimilar", "Tokenize", "ListModels",
                               "GetModel")),
       payload=st.one_of(st.binary(max_size=200),
                         embed_requests().map(lambda r: r.SerializeToString()[:-1]),
                         st.just(b"\x1a\x02\xff\xfe")))  # fmt: skip
def test_undecodable_bytes(
    channel: grpc.Channel, baseline_rss: int, method: str, payload: bytes
) -> None:
    """Raw bytes: what decodes as the request is answered as usual; what does not is refused by
    gRPC itself before any handler runs (documented: UNKNOWN "Unexpected DecodeError", or
    INTERNAL), and the server carries on."""
    raw = channel.unary_unary(SERVICE + method, request_serializer=None,
                              response_deserializer=None)  # fmt: skip
    CASES[f"raw {method}"] = CASES.get(f"raw {method}", 0) + 1
    try:
        raw(payload, timeout=TIMEOUT_S)
    except grpc.RpcError as error:
        code = error.code()
        if code in UNDECODABLE and not _decodes(method, payload):
            assert "DecodeError" in error.details() or "deserializ" in error.details().lower()
            return
        assert code in DOCUMENTED, (method, payload, code, error.details())
        assert error.details()


# -- afterwards ----------------------------------------------------------------------------
def test_server_is_healthy_and_memory_bounded(
    fuzz_server: ServerProcess, channel: grpc.Channel, stub: Any, baseline_rss: int
) -> None:
    """Runs last (file order): the count, health, a good request, RSS within 20 %."""
    total = sum(count for method, count in CASES.items() if method != "warmup")
    assert total >= MIN_CASES, CASES
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert stub.Embed(GOOD, timeout=TIMEOUT_S).dim == 32
    assert fuzz_server.process is not None and fuzz_server.process.poll() is None
    time.sleep(0.5)
    after = rss_kib(fuzz_server.process.pid)
    assert after <= baseline_rss * RSS_GROWTH, (baseline_rss, after, CASES)
    print(f"fuzz: {total} requests {CASES}; RSS {baseline_rss} KiB -> {after} KiB")
    print(f"fuzz outcomes: {sorted(OUTCOMES.items())}")
    for method in ("Embed", "FillMask", "MostSimilar", "Tokenize", "GetModel"):
        assert OUTCOMES[f"{method} OK"] >= 20, f"{method}: too few valid requests {OUTCOMES}"
