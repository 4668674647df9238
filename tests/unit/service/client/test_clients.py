"""Both clients offer the same methods and send the same requests: each method is called
through the blocking and the asyncio client against one real gRPC server that records what
arrives. Methods taking texts and a model take the model by keyword."""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from proto.embedding.v1 import embedding_pb2 as pb
from service.client import AsyncEmbeddingClient, EmbeddingClient, embed_request
from tests.unit.service.client.recording import RecordingServicer

TOKEN = "s3cret-token"


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_both_clients_have_the_same_methods_and_parameters() -> None:
    blocking, asynchronous = public_methods(EmbeddingClient), public_methods(AsyncEmbeddingClient)
    assert sorted(blocking) == sorted(asynchronous)
    for name, method in blocking.items():
        expected = [
            (p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()
        ]
        other = asynchronous[name]
        actual = [(p.name, p.kind, p.default) for p in inspect.signature(other).parameters.values()]
        assert actual == expected, name
        assert inspect.iscoroutinefunction(other) or inspect.isasyncgenfunction(other), name
    assert inspect.signature(EmbeddingClient) == inspect.signature(AsyncEmbeddingClient)


Call = tuple[tuple[Any, ...], dict[str, Any]]
STREAM = [embed_request(["a b", "c"], "bert", pooling="mean"), embed_request(["d"], "bert")]
# Every public method but close: (arguments, keyword arguments).
CALLS: dict[str, Call] = {
    "embed": ((["the cook", "an apple"],), {"model": "bert", "pooling": "cls", "layers": [1, 2]}),
    "embed_stream": ((STREAM,), {}),
    "fill_mask": (
        (["the [MASK] is red"],),
        {"model": "bert", "top_k": 3, "cache_policy": "bypass", "truncate": True},
    ),
    "most_similar": ((["apple"],), {"model": "word2vec", "negative": ["mushy"], "top_k": 4}),
    "tokenize": ((["some text"],), {"model": "bert", "version": "2"}),
    "list_models": ((), {}),
    "get_model": (("elmo",), {"version": "3"}),
    "health": ((), {}),
}


def test_every_method_is_called_by_the_request_test() -> None:
    assert set(CALLS) == set(public_methods(EmbeddingClient)) - {"close"}


async def call_async(client: AsyncEmbeddingClient, name: str) -> Any:
    args, kwargs = CALLS[name]
    if name == "embed_stream":
        return [response async for response in client.embed_stream(*args, **kwargs)]
    return await getattr(client, name)(*args, **kwargs)


def call_blocking(client: EmbeddingClient, name: str) -> Any:
    args, kwargs = CALLS[name]
    result = getattr(client, name)(*args, **kwargs)
    return list(result) if name == "embed_stream" else result


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_both_clients_send_the_same_requests(
    server: tuple[str, RecordingServicer], name: str
) -> None:
    target, recorder = server
    with EmbeddingClient(target, timeout=10, token=TOKEN) as blocking:
        blocking_result = call_blocking(blocking, name)
    blocking_calls, recorder.calls[:] = list(recorder.calls), []
    async with AsyncEmbeddingClient(target, timeout=10, token=TOKEN) as asynchronous:
        async_result = await call_async(asynchronous, name)
    assert async_result == blocking_result
    assert recorder.calls == blocking_calls
    if name == "health":
        assert blocking_result == "SERVING"
    else:
        assert blocking_calls, "the server saw no call"
        assert {authorization for _, _, authorization in blocking_calls} == {f"Bearer {TOKEN}"}
    if name == "embed_stream":
        assert [request for _, request, _ in blocking_calls] == STREAM


def test_requests_carry_the_arguments(server: tuple[str, RecordingServicer]) -> None:
    target, recorder = server
    with EmbeddingClient(target, timeout=10) as client:
        response = client.embed(
            ["the cook"],
            model="bert",
            pooling="cls",
            layers=[1, 2],
            normalize=False,
            prompt_name="query",
            dimensions=2,
        )
        client.get_model("elmo", version="3")
    (_, embed, authorization), (_, get_model, _) = recorder.calls
    assert embed == pb.EmbedRequest(
        model="bert",
        texts=["the cook"],
        pooling=pb.POOLING_CLS,
        layers=[1, 2],
        normalization=pb.NORMALIZATION_OFF,
        prompt_name="query",
        dimensions=2,
    )
    assert authorization is None  # no token, no header
    assert get_model == pb.GetModelRequest(model="elmo", version="3")
    assert response.dim == 2


# The methods that take texts (or words) and a model: the model goes by keyword. Each entry:
# the call as documented, the same call in the old positional order, and the order most
# people guess (the model first), which must fail before anything is sent.
MODEL_CALLS: dict[str, tuple[Call, Call, Call]] = {
    "embed": (
        ((["the cook"],), {"model": "bert", "pooling": "cls"}),
        ((["the cook"], "bert"), {"pooling": "cls"}),
        (("bert", ["the cook"]), {}),
    ),
    "fill_mask": (
        (
            (["the [MASK]"],),
            {"model": "bert", "top_k": 3, "version": "2", "cache_policy": "bypass"},
        ),
        ((["the [MASK]"], "bert", 3, "2", "bypass"), {}),
        (("bert", ["the [MASK]"]), {}),
    ),
    "most_similar": (
        ((["apple"],), {"model": "word2vec", "negative": ["mushy"], "top_k": 4, "version": "1"}),
        (("word2vec", ["apple"], ["mushy"], 4, "1"), {}),
        ((["apple"], "word2vec"), {}),
    ),
    "tokenize": (
        ((["some text"],), {"model": "bert", "version": "2"}),
        ((["some text"], "bert", "2"), {}),
        (("bert", ["some text"]), {}),
    ),
}
CLIENTS = ("blocking", "asyncio")


def test_every_method_taking_a_model_and_texts_is_covered() -> None:
    takes_model = {
        name
        for name, method in public_methods(EmbeddingClient).items()
        if "model" in inspect.signature(method).parameters and name != "get_model"
    }
    assert takes_model == set(MODEL_CALLS)
    for name in MODEL_CALLS:
        for cls in (EmbeddingClient, AsyncEmbeddingClient):
            model = inspect.signature(getattr(cls, name)).parameters["model"]
            assert model.kind is inspect.Parameter.KEYWORD_ONLY, (cls.__name__, name)


async def call_with(kind: str, target: str, name: str, call: Call) -> Any:
    args, kwargs = call
    if kind == "blocking":
        with EmbeddingClient(target, timeout=10) as client:
            return getattr(client, name)(*args, **kwargs)
    async with AsyncEmbeddingClient(target, timeout=10) as asynchronous:
        return await getattr(asynchronous, name)(*args, **kwargs)


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("name", sorted(MODEL_CALLS))
async def test_the_model_first_is_refused_naming_the_order(
    server: tuple[str, RecordingServicer], name: str, kind: str
) -> None:
    target, recorder = server
    _, _, swapped = MODEL_CALLS[name]
    with pytest.raises(TypeError, match=rf"{name}\(.*model=") as raised:
        await call_with(kind, target, name, swapped)
    assert "by keyword" in str(raised.value)
    assert recorder.calls == []


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("name", sorted(MODEL_CALLS))
async def test_old_positional_calls_still_work_with_a_deprecation_warning(
    server: tuple[str, RecordingServicer], name: str, kind: str
) -> None:
    target, recorder = server
    keyword, positional, _ = MODEL_CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the documented form warns of nothing
        expected = await call_with(kind, target, name, keyword)
    with pytest.warns(DeprecationWarning, match="model=") as warned:
        answer = await call_with(kind, target, name, positional)
    assert answer == expected
    assert {record.filename for record in warned} == {__file__}  # points at the caller
    (_, sent, _), (_, old, _) = recorder.calls
    assert old == sent


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(
    ("name", "call", "complaint"),
    [
        ("embed", (("one text",), {"model": "bert"}), "texts must be a list of strings"),
        ("tokenize", ((["a"],), {}), "model="),
        ("embed", ((["a"],), {"model": ["bert"]}), "model must be a str"),
        ("fill_mask", ((["a"], "bert"), {"model": "bert"}), "multiple values for argument 'model'"),
        ("tokenize", ((["a"], "bert", "1", "extra"), {}), "at most"),
    ],
)
async def test_a_call_that_cannot_be_meant_is_refused_before_sending(
    server: tuple[str, RecordingServicer], name: str, call: Call, complaint: str, kind: str
) -> None:
    target, recorder = server
    with pytest.raises(TypeError, match=re.escape(complaint)):
        await call_with(kind, target, name, call)
    assert recorder.calls == []
