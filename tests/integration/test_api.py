"""API behaviour over a real channel: statuses for bad input, streaming, model info, reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient, embed_request
from tests.integration.harness import ServerThread


def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    return raised.value.code(), raised.value.details()


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (lambda c: c.embed(["x"], "nope"), grpc.StatusCode.NOT_FOUND, "model 'nope' is not served"),
        (
            lambda c: c.embed(["x"], "tiny-mlm", version="7"),
            grpc.StatusCode.NOT_FOUND,
            "no version 7",
        ),
        (
            lambda c: c.embed(["x"], "tiny-mlm", version="v1"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "version must be a number",
        ),
        (lambda c: c.embed([], "tiny-mlm"), grpc.StatusCode.INVALID_ARGUMENT, "texts is empty"),
        (
            lambda c: c.embed(["ok", "  "], "tiny-mlm"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "texts[1] is empty",
        ),
        (lambda c: c.embed(["x"], ""), grpc.StatusCode.INVALID_ARGUMENT, "model is empty"),
        (
            lambda c: c.embed(["x"], "tiny-mlm", layers=[3]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "choose layers from 0",
        ),
        (
            lambda c: c.embed(["x"], "tiny-mlm", layer_weights=[1.0]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "needs 3 weights",
        ),
        (
            lambda c: c.embed(["x"], "tiny-mlm", layers=[1], layer_weights=[1, 1, 1]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not both",
        ),
        (
            lambda c: c.embed(["x"], "tiny-mlm", layer_weights=[1, float("nan"), 1]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "finite",
        ),
        (
            lambda c: c.embed([" ".join(["a"] * 200)], "tiny-mlm"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "maximum of 128",
        ),
        (
            lambda c: c.fill_mask(["no mask"], "tiny-mlm"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "contains no [MASK] token",
        ),
        (
            lambda c: c.fill_mask(["a [MASK]"], "tiny-encoder"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "has no masked-LM head",
        ),
        (
            lambda c: c.fill_mask(["a [MASK]"], "tiny-mlm", top_k=5000),
            grpc.StatusCode.INVALID_ARGUMENT,
            "top_k",
        ),
        (
            lambda c: c.most_similar("tiny-mlm", ["river"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "model tiny-mlm has no most_similar capability",
        ),
        (lambda c: c.get_model("nope"), grpc.StatusCode.NOT_FOUND, "not served"),
    ],
)
def test_bad_requests_get_a_clear_status(client: EmbeddingClient, call, code, message) -> None:
    got_code, details = status_of(lambda: call(client))
    assert got_code == code
    assert message in details


def test_unknown_pooling_value(client: EmbeddingClient) -> None:
    request = pb.EmbedRequest(model="tiny-mlm", texts=["x"], pooling=42)  # type: ignore[arg-type]
    code, details = status_of(lambda: client.stub.Embed(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "pooling 42 is unknown" in details


def test_too_many_texts_in_one_request(imported) -> None:
    from tests.integration.harness import running_server

    with (
        running_server(imported["models"], max_texts_per_request=4) as server,
        EmbeddingClient(server.target) as c,
    ):
        code, details = status_of(lambda: c.embed(["x"] * 5, "tiny-mlm"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit is 4" in details


def test_stream_answers_each_request_in_order(client: EmbeddingClient) -> None:
    requests = [embed_request([f"text number {i}"] * (i + 1), "tiny-mlm") for i in range(5)]
    responses = list(client.embed_stream(requests))
    assert [len(r.embeddings) for r in responses] == [1, 2, 3, 4, 5]


def test_stream_error_ends_the_stream_with_a_status(client: EmbeddingClient) -> None:
    requests = [embed_request(["fine"], "tiny-mlm"), embed_request(["x"], "missing")]
    code, details = status_of(lambda: list(client.embed_stream(requests)))
    assert code == grpc.StatusCode.NOT_FOUND and "missing" in details


def test_model_info(client: EmbeddingClient) -> None:
    names = {info.name: info for info in client.list_models().models}
    assert set(names) == {"tiny-mlm", "tiny-encoder"}
    mlm = client.get_model("tiny-mlm")
    assert mlm.architecture == "bert" and mlm.dim == 32 and mlm.num_layers == 2
    assert list(mlm.capabilities) == ["embed", "fill_mask"] and mlm.mask_token == "[MASK]"
    assert list(mlm.default_layers) == [2] and mlm.default_pooling == pb.POOLING_MEAN
    assert list(names["tiny-encoder"].capabilities) == ["embed"]


def test_tokenize(client: EmbeddingClient) -> None:
    result = client.tokenize(["The River bank"], "tiny-mlm").results[0]
    assert list(result.tokens) == ["[CLS]", "the", "river", "bank", "[SEP]"]
    assert len(result.ids) == 5 and list(result.offsets)[2:4] == [0, 3]


def test_fill_mask_shape_and_scores(client: EmbeddingClient) -> None:
    response = client.fill_mask(
        ["the [MASK] bank and the [MASK] mill", "a [MASK]"], "tiny-mlm", top_k=3
    )
    first, second = response.results
    assert len(first.masks) == 2 and len(second.masks) == 1
    for mask in first.masks:
        scores = [p.score for p in mask.predictions]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    assert first.masks[0].predictions[0].sequence.count("[MASK]") == 1


def test_reflection_lists_the_services(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(stub.ServerReflectionInfo(iter([request])))
    names = {service.name for service in response.list_services_response.service}
    assert {"embedding.v1.EmbeddingService", "grpc.health.v1.Health"} <= names
