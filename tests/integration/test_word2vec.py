"""word2vec over a real channel: vectors equal gensim's KeyedVectors for both C formats, sentence
means, MostSimilar as gensim's most_similar, the unknown-word policy, and no batch queue."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from gensim.models import KeyedVectors

from export.word2vec.exporter import import_word2vec
from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient, vectors
from tests.integration.harness import ServerThread, running_server
from tests.word2vec_files import assert_same_neighbours, save_c_formats, train_tiny_vectors

FORMATS = ("text", "binary")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The C files and a repository with each imported through the real exporter."""
    root = tmp_path_factory.mktemp("word2vec")
    files = save_c_formats(train_tiny_vectors(), root / "files")
    for kind, path in files.items():
        import_word2vec(path, kind == "binary", root / "models", f"w2v-{kind}")
    return {**files, "models": root / "models"}


@pytest.fixture(scope="module")
def gensim_vectors(sources: dict[str, Path]) -> dict[str, KeyedVectors]:
    """The reference: each file as gensim loads it."""
    return {
        kind: KeyedVectors.load_word2vec_format(str(sources[kind]), binary=kind == "binary")
        for kind in FORMATS
    }


@pytest.fixture(scope="module")
def w2v_server(sources: dict[str, Path]) -> Iterator[ServerThread]:
    with running_server(sources["models"]) as running:
        yield running


@pytest.fixture
def client(w2v_server: ServerThread) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(w2v_server.target, timeout=30) as connected:
        yield connected


def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    return raised.value.code(), raised.value.details()


@pytest.mark.parametrize("kind", FORMATS)
def test_served_vectors_equal_gensim_exactly(
    kind: str, client: EmbeddingClient, gensim_vectors: dict[str, KeyedVectors]
) -> None:
    reference = gensim_vectors[kind]
    words = list(reference.index_to_key)
    response = client.embed([" ".join(words)], f"w2v-{kind}", pooling="none")
    (served,) = vectors(response)
    assert list(response.embeddings[0].tokens) == words and response.dim == reference.vector_size
    assert served.dtype == np.float32 and np.array_equal(served, reference.vectors)
    for word in ("apple", "bank", "."):
        single = vectors(client.embed([word], f"w2v-{kind}", pooling="none"))[0]
        assert np.array_equal(single.ravel(), reference[word])  # one token: shape (dim,)


def test_sentence_mean_max_and_normalize(
    client: EmbeddingClient, gensim_vectors: dict[str, KeyedVectors]
) -> None:
    reference = gensim_vectors["binary"]
    texts = ["the mushy apple", "the reedy bank , by the river ."]
    rows = [reference[text.split()] for text in texts]
    mean = vectors(client.embed(texts, "w2v-binary", pooling="mean"))
    default = vectors(client.embed(texts, "w2v-binary"))  # the model's default is mean
    maximum = vectors(client.embed(texts, "w2v-binary", pooling="max"))
    unit = vectors(client.embed(texts, "w2v-binary", pooling="mean", normalize=True))
    for index, row in enumerate(rows):
        np.testing.assert_allclose(mean[index], row.mean(axis=0), rtol=0, atol=1e-6)
        assert np.array_equal(default[index], mean[index])
        assert np.array_equal(maximum[index], row.max(axis=0))
        np.testing.assert_allclose(
            unit[index], row.mean(axis=0) / np.linalg.norm(row.mean(axis=0)), atol=1e-6
        )


@pytest.mark.parametrize("kind", FORMATS)
def test_most_similar_equals_gensim(
    kind: str, client: EmbeddingClient, gensim_vectors: dict[str, KeyedVectors]
) -> None:
    reference = gensim_vectors[kind]
    queries: list[tuple[list[str], list[str]]] = [
        (["apple"], []),
        (["bank"], []),
        (["river", "bank"], []),
        (["apple", "laptop"], ["mushy"]),  # analogy: apple - mushy + laptop
        (["court", "guitar"], ["judge", "lawyer"]),
        *[([word], []) for word in reference.index_to_key[::151]],
    ]
    for positive, negative in queries:
        response = client.most_similar(f"w2v-{kind}", positive, negative, top_k=10)
        assert response.model == f"w2v-{kind}" and response.version == "1"
        got = [(neighbor.word, neighbor.score) for neighbor in response.neighbors]
        want = reference.most_similar(positive=positive, negative=negative, topn=15)
        assert len(got) == 10
        assert_same_neighbours(got, want)
        assert not set(positive + negative) & {word for word, _ in got}


def test_most_similar_top_k(client: EmbeddingClient, gensim_vectors) -> None:
    reference = gensim_vectors["binary"]
    default = client.most_similar("w2v-binary", ["apple"], top_k=0).neighbors
    assert len(default) == 10
    many = client.most_similar("w2v-binary", ["apple"], top_k=1000).neighbors
    assert len(many) == 1000 and [n.word for n in many[:10]] == [n.word for n in default]
    scores = [n.score for n in many]
    assert scores == sorted(scores, reverse=True)
    everything = reference.most_similar("apple", topn=1000)
    np.testing.assert_allclose(scores, [score for _, score in everything], atol=1e-5)


def test_unknown_words_are_reported_or_skipped(
    client: EmbeddingClient, gensim_vectors: dict[str, KeyedVectors]
) -> None:
    code, details = status_of(lambda: client.embed(["the Apple zzyzx mushy"], "w2v-binary"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "'Apple', 'zzyzx'" in details and "skip_unknown" in details

    text = "the Apple zzyzx mushy apple zzyzx"
    response = client.embed([text], "w2v-binary", pooling="mean", skip_unknown=True)
    embedding = response.embeddings[0]
    assert list(embedding.unknown_tokens) == ["Apple", "zzyzx", "zzyzx"]
    assert list(embedding.tokens) == ["the", "mushy", "apple"] and embedding.num_tokens == 3
    known = gensim_vectors["binary"][["the", "mushy", "apple"]]
    np.testing.assert_allclose(vectors(response)[0], known.mean(axis=0), rtol=0, atol=1e-6)

    per_word = client.embed([text], "w2v-binary", pooling="none", skip_unknown=True)
    assert np.array_equal(vectors(per_word)[0], known)


def test_tokenize_splits_at_whitespace_and_marks_unknown_words(client: EmbeddingClient) -> None:
    result = client.tokenize(["the  Ripe\tapple ."], "w2v-binary").results[0]
    assert list(result.tokens) == ["the", "Ripe", "apple", "."]
    assert result.ids[1] == -1 and min(result.ids[0], result.ids[2], result.ids[3]) >= 0
    assert list(result.offsets) == [0, 3, 5, 9, 10, 15, 16, 17]


def test_model_info(client: EmbeddingClient) -> None:
    info = client.get_model("w2v-text")
    assert info.architecture == "word2vec" and info.dim == 24 and info.num_layers == 0
    assert list(info.capabilities) == ["embed", "most_similar"]
    assert info.default_pooling == pb.POOLING_MEAN and list(info.default_layers) == [0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.embed([], "w2v-binary"), "texts is empty"),
        (lambda c: c.embed(["apple", " \t "], "w2v-binary"), "texts[1] is empty"),
        (
            lambda c: c.embed(["zzyzx qqq"], "w2v-binary", skip_unknown=True),
            "texts[0] has no word in the vocabulary",
        ),
        (lambda c: c.embed(["apple"], "w2v-binary", pooling="cls"), "no [CLS] token"),
        (lambda c: c.embed(["apple"], "w2v-binary", layers=[1]), "choose layers from 0"),
        (lambda c: c.embed(["apple"], "w2v-binary", layer_weights=[1.0]), "single layer"),
        (
            lambda c: c.embed([" ".join(["apple"] * 10_001)], "w2v-binary"),
            "maximum of 10000",
        ),
        (lambda c: c.most_similar("w2v-binary", []), "positive is empty"),
        (lambda c: c.most_similar("w2v-binary", ["apple", "Zzz"]), "'Zzz'"),
        (lambda c: c.most_similar("w2v-binary", ["apple"], ["qq"]), "'qq'"),
        (lambda c: c.most_similar("w2v-binary", [""]), "not in the vocabulary"),
        (lambda c: c.most_similar("w2v-binary", ["apple"], ["apple"]), "cancel out"),
        (lambda c: c.most_similar("w2v-binary", ["apple"], top_k=1001), "at most 1000"),
        (lambda c: c.fill_mask(["a [MASK]"], "w2v-binary"), "has no masked-LM head"),
    ],
)
def test_bad_requests_are_invalid_arguments(client: EmbeddingClient, call, message) -> None:
    code, details = status_of(lambda: call(client))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert message in details


def test_truncate_cuts_long_texts(client: EmbeddingClient) -> None:
    response = client.embed([" ".join(["apple"] * 10_005)], "w2v-binary", truncate=True)
    assert response.embeddings[0].truncated and response.embeddings[0].num_tokens == 10_000


def test_static_lookups_do_not_wait_behind_contextual_batches(
    imported: dict[str, Path], sources: dict[str, Path], tmp_path: Path
) -> None:
    """With BERT's queue full, word2vec answers at once (it has no batcher to queue in)."""
    models = tmp_path / "models"
    shutil.copytree(imported["models"] / "tiny-mlm", models / "tiny-mlm")
    shutil.copytree(sources["models"] / "w2v-binary", models / "w2v-binary")
    with (
        running_server(models, max_batch_size=1, max_texts_per_request=1000) as server,
        EmbeddingClient(server.target, timeout=60) as busy,
        EmbeddingClient(server.target, timeout=10) as quick,
    ):
        assert server.app.embedder is not None
        static = server.app.embedder.resolve("w2v-binary", "")
        assert static.embed_batcher is None and static.direct is not None
        contextual = server.app.embedder.resolve("tiny-mlm", "").embed_batcher
        assert contextual is not None
        texts = [" ".join(["river bank flows"] * 40)] * 600
        with ThreadPoolExecutor(1) as pool:
            background = pool.submit(busy.embed, texts, "tiny-mlm")
            while contextual.queue_size < 300:
                time.sleep(0.001)
            started = time.perf_counter()
            answer = quick.embed(["the mushy apple"], "w2v-binary")
            similar = quick.most_similar("w2v-binary", ["apple"])
            elapsed = time.perf_counter() - started
            assert contextual.queue_size > 0, "the BERT queue drained before word2vec answered"
            assert len(answer.embeddings) == 1 and len(similar.neighbors) == 10
            assert elapsed < 1.0
            assert len(background.result().embeddings) == 600
