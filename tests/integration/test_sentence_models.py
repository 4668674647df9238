"""sentence-transformers folders, imported and served over real channels, answer as their
authors' ``SentenceTransformer.encode`` does: pooling, Dense layers, normalisation, prompts
(pooled or not), maximum length and lower-casing from the folder, in both layouts it is found
in; and ``dimensions`` as Matryoshka truncation."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from openai import OpenAI
from sentence_transformers import SentenceTransformer

from export.bert.exporter import import_bert
from export.bert.sentence import read_sentence_pipeline
from modelrepo import load_checked
from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient, vectors
from service.domain import EmbedQuery, resolve_embed_options
from service.runtime.bert import BertRuntime
from service.runtime.session import CPU_FP32
from tests.integration.harness import ServerThread, running_server
from tests.sentence_checkpoints import save_legacy_sentence_transformer, save_sentence_transformer

pytestmark = pytest.mark.slow

TEXTS = [
    "the river bank flows past green fields",
    "Children play football, 42 times!",
    "query: the old mill by the ΟΔΟΣ",  # Greek capitals: str.lower() and Lowercase differ
]
PROMPTS = {"query": "query: ", "passage": "passage: "}
FOLDERS: dict[str, dict[str, Any]] = {
    "bert-cls": {"architecture": "bert", "pooling": "cls", "normalize": True},
    "bert-cls-prompts": {
        "architecture": "bert",
        "pooling": "cls",
        "normalize": True,
        "prompts": PROMPTS,
        "include_prompt": False,
    },
    "roberta-prompts": {
        "architecture": "roberta",
        "pooling": "mean",
        "normalize": True,
        "prompts": PROMPTS,
        "default_prompt_name": "query",
        "include_prompt": False,
    },
    "roberta-pooled-prompt": {
        "architecture": "roberta",
        "pooling": "mean",
        "normalize": False,
        "prompts": PROMPTS,
        "include_prompt": True,
    },
    "distilbert-dense": {
        "architecture": "distilbert",
        "pooling": "mean",
        "normalize": True,
        "dense_out": 16,
    },
    "xlmr-short": {
        "architecture": "xlm-roberta",
        "pooling": "mean-sqrt-len",
        "normalize": False,
        "max_seq_length": 12,
    },
    "electra-max": {"architecture": "electra", "pooling": "max", "normalize": True},
}
LEGACY = {
    "distilbert-dense-legacy": "distilbert-dense",  # Dense weights in pytorch_model.bin only
    "roberta-prompts-legacy": "roberta-prompts",
    "xlmr-short-legacy": "xlmr-short",  # max_seq_length 12 over the tokenizer's 512
}
LOWERCASED = {"roberta-lowercase-legacy": "roberta-pooled-prompt"}  # do_lower_case: true
EVERY = [*FOLDERS, *LEGACY, *LOWERCASED]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every folder of ``FOLDERS`` and ``LEGACY``, imported under its name; ``models``: the
    repository."""
    root = tmp_path_factory.mktemp("sentence")
    built = {name: save_sentence_transformer(root / name, **kw) for name, kw in FOLDERS.items()}
    for legacy, new in LEGACY.items():
        built[legacy] = save_legacy_sentence_transformer(built[new], root / legacy)
    for legacy, new in LOWERCASED.items():
        built[legacy] = save_legacy_sentence_transformer(
            built[new], root / legacy, do_lower_case=True
        )
    settings = built["electra-max"] / "config_sentence_transformers.json"
    settings.write_text(
        json.dumps(json.loads(settings.read_text()) | {"similarity_fn_name": "dot"})
    )
    for name, folder in built.items():
        import_bert(folder, root / "models", name)
    return {**built, "models": root / "models"}


@pytest.fixture(scope="module")
def server(folders: dict[str, Path]) -> Iterator[ServerThread]:
    with running_server(folders["models"], http_port=0) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(server.target, timeout=30) as connected:
        yield connected


@pytest.fixture(scope="module")
def references(folders: dict[str, Path]) -> dict[str, SentenceTransformer]:
    return {name: SentenceTransformer(str(folders[name]), device="cpu") for name in EVERY}


def served(client: EmbeddingClient, name: str, texts: list[str], **options: Any) -> np.ndarray:
    return np.stack(vectors(client.embed(texts, name, truncate=True, **options)))


def l2(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True))


@pytest.mark.parametrize("name", EVERY)
def test_the_default_embedding_is_the_authors_encode(
    client: EmbeddingClient, references: dict[str, SentenceTransformer], name: str
) -> None:
    """No option given: the folder's pooling, Dense layers, normalisation and default prompt."""
    expected = references[name].encode(TEXTS)
    np.testing.assert_allclose(served(client, name, TEXTS), expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize(
    "name", ["roberta-prompts", "roberta-pooled-prompt", "bert-cls", "bert-cls-prompts"]
)
def test_each_prompt_by_name_is_the_authors_encode(
    client: EmbeddingClient, references: dict[str, SentenceTransformer], name: str
) -> None:
    """Each of the folder's prompts (6.x adds empty "query" and "document" to any folder),
    whether its tokens are pooled or, as this model was trained, left out."""
    reference = references[name]
    assert set(reference.prompts) <= set(client.get_model(name).prompts)
    for prompt_name in reference.prompts:
        expected = reference.encode(TEXTS, prompt_name=prompt_name)
        got = served(client, name, TEXTS, prompt_name=prompt_name)
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5, err_msg=prompt_name)


def test_a_pooled_prompt_changes_the_vector_and_an_unpooled_one_its_context(
    client: EmbeddingClient,
) -> None:
    bare = served(client, "roberta-pooled-prompt", TEXTS)
    prompted = served(client, "roberta-pooled-prompt", TEXTS, prompt_name="passage")
    assert np.abs(bare - prompted).max() > 1e-3


def test_model_info_describes_the_pipeline(client: EmbeddingClient) -> None:
    prompts = client.get_model("roberta-prompts")
    assert prompts.dim == 32 and prompts.default_pooling == pb.POOLING_MEAN
    assert prompts.default_normalize and prompts.default_prompt_name == "query"
    assert dict(prompts.prompts) == {**PROMPTS, "document": ""}
    dense = client.get_model("distilbert-dense")
    assert dense.dim == 16 and dense.default_normalize and not dense.default_prompt_name
    short = client.get_model("xlmr-short")
    assert short.max_sequence_length == 12 and not short.default_normalize
    assert short.default_pooling == pb.POOLING_MEAN_SQRT_LEN
    assert client.get_model("bert-cls").default_pooling == pb.POOLING_CLS
    electra = client.get_model("electra-max")
    assert electra.default_pooling == pb.POOLING_MAX and electra.similarity == "dot"
    assert prompts.similarity == dense.similarity == "cosine"


def test_dimensions_cut_and_renormalise_like_matryoshka_encode(
    client: EmbeddingClient, references: dict[str, SentenceTransformer]
) -> None:
    for name, size in (("distilbert-dense", 8), ("bert-cls", 20)):
        reference = references[name]
        expected = reference.encode(TEXTS, truncate_dim=size, normalize_embeddings=True)
        response = client.embed(TEXTS, name, dimensions=size)
        assert response.dim == size
        got = np.stack(vectors(response))
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
        np.testing.assert_allclose(got, l2(reference.encode(TEXTS)[:, :size]), atol=2e-5)
    # a model that does not normalise: its first values, as they are
    expected = references["xlmr-short"].encode(TEXTS, truncate_dim=5)
    np.testing.assert_allclose(
        served(client, "xlmr-short", TEXTS, dimensions=5), expected, atol=2e-5
    )


def test_normalisation_is_the_models_default_and_either_way_on_request(
    client: EmbeddingClient, references: dict[str, SentenceTransformer]
) -> None:
    normalised = references["electra-max"].encode(TEXTS)
    raw = served(client, "electra-max", TEXTS, normalize=False)
    assert np.all(np.abs(np.linalg.norm(raw, axis=1) - 1) > 1e-2), "the Normalize module skipped"
    np.testing.assert_allclose(l2(raw), normalised, atol=2e-5)
    plain = references["xlmr-short"].encode(TEXTS)
    np.testing.assert_allclose(
        served(client, "xlmr-short", TEXTS, normalize=True), l2(plain), atol=2e-5
    )


def test_the_folders_maximum_length_truncates_as_encode_does(
    client: EmbeddingClient, references: dict[str, SentenceTransformer]
) -> None:
    long = ["the river bank flows past green fields and the old mill"]
    expected = references["xlmr-short"].encode(long)
    np.testing.assert_allclose(served(client, "xlmr-short", long), expected, atol=2e-5)
    with pytest.raises(grpc.RpcError) as refused:
        client.embed(long, "xlmr-short")
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "12" in str(refused.value.details())


def test_lower_casing_is_the_folders_own(client: EmbeddingClient) -> None:
    """The byte-level BPE tokenizer is cased: lower-casing changes tokens, so vectors."""
    lowered = served(client, "roberta-lowercase-legacy", TEXTS)
    cased = served(client, "roberta-pooled-prompt", TEXTS)
    assert np.abs(lowered[1:] - cased[1:]).max() > 1e-3  # texts with capitals
    np.testing.assert_allclose(lowered[0], cased[0], atol=1e-6)  # an all-lowercase text
    # tokenizers' Lowercase, as sentence-transformers adds it: every sigma is σ (str.lower()
    # would end the word with ς), so the tokens are those of the cased model on that text
    (lowercased,) = client.tokenize([TEXTS[2]], "roberta-lowercase-legacy").results
    (by_hand,) = client.tokenize(
        ["query: the old mill by the οδοσ"], "roberta-pooled-prompt"
    ).results
    assert list(lowercased.ids) == list(by_hand.ids)


@pytest.mark.parametrize(("legacy", "new"), LEGACY.items())
def test_both_layouts_are_served_alike(
    client: EmbeddingClient, folders: dict[str, Path], legacy: str, new: str
) -> None:
    old_layout, new_layout = (read_sentence_pipeline(folders[name]) for name in (legacy, new))
    assert old_layout is not None and new_layout is not None
    assert old_layout.pooling == new_layout.pooling
    assert client.get_model(legacy).max_sequence_length == client.get_model(new).max_sequence_length
    for prompt_name in ("", "passage") if new == "roberta-prompts" else ("",):
        np.testing.assert_array_equal(
            served(client, legacy, TEXTS, prompt_name=prompt_name),
            served(client, new, TEXTS, prompt_name=prompt_name),
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt_name": "summary"}, "'summary' is not a prompt of roberta-prompts; its prompts:"),
        ({"dimensions": 33}, "dimensions is 33, but roberta-prompts answers 32 values"),
    ],
)
def test_bad_options_are_refused_with_what_the_model_offers(
    client: EmbeddingClient, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        client.embed(TEXTS, "roberta-prompts", **options)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in str(refused.value.details())


def test_the_openai_client_gets_dimensions_and_prompts(
    server: ServerThread, references: dict[str, SentenceTransformer]
) -> None:
    assert server.app.http is not None
    client = OpenAI(
        base_url=f"http://127.0.0.1:{server.app.http.port}/v1", api_key="none", max_retries=0
    )
    reference = references["roberta-prompts"]
    reply = client.embeddings.create(
        model="roberta-prompts",
        input=TEXTS,
        dimensions=12,
        encoding_format="float",
        extra_body={"prompt_name": "passage"},
    )
    expected = reference.encode(
        TEXTS, prompt_name="passage", truncate_dim=12, normalize_embeddings=True
    )
    got = np.asarray([item.embedding for item in reply.data])
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("modules.json", lambda modules: [*modules, {"path": "x", "type": "x.LSTM"}]),
            "module 'x.LSTM' is not supported",
        ),
        (
            ("1_Pooling/config.json", lambda config: config | {"pooling_mode": "weightedmean"}),
            "pooling mode 'weightedmean' is not supported",
        ),
        (
            ("1_Pooling/config.json", lambda config: config | {"pooling_mode": ["cls", "mean"]}),
            "pooling modes ['cls', 'mean'] are concatenated",
        ),
        (
            (
                "2_Dense/config.json",
                lambda config: (
                    config | {"activation_function": "torch.nn.modules.activation.LeakyReLU"}
                ),
            ),
            "activation 'torch.nn.modules.activation.LeakyReLU' is not supported",
        ),
        (
            ("modules.json", lambda modules: [modules[0], modules[1], modules[3], modules[2]]),
            "is not served (Dense layers go between Pooling and Normalize)",
        ),
        (
            (
                "config_sentence_transformers.json",
                lambda config: config | {"default_prompt_name": "summary"},
            ),
            "default_prompt_name 'summary' is not among its prompts",
        ),
        (
            (
                "config_sentence_transformers.json",
                lambda config: config | {"similarity_fn_name": "maxsim"},
            ),
            "similarity_fn_name 'maxsim' is not known",
        ),
        (
            ("config_sentence_transformers.json", lambda config: config | {"prompts": {"q": None}}),
            "prompts must map names to texts",
        ),
        (
            (
                "sentence_bert_config.json",
                lambda config: config | {"transformer_task": "text-generation"},
            ),
            "transformer_task 'text-generation' is not served",
        ),
        (
            (
                "sentence_bert_config.json",
                lambda config: config | {"config_kwargs": {"hidden_dropout_prob": 0.5}},
            ),
            "config_kwargs ['hidden_dropout_prob'] would change the model",
        ),
        (
            ("2_Dense/config.json", lambda config: config | {"in_features": 16}),
            "the config says 16 -> 16, the weights are 32 -> 16",
        ),
    ],
    ids=[
        "module",
        "pooling",
        "concatenated",
        "activation",
        "order",
        "default-prompt",
        "maxsim",
        "null-prompt",
        "task",
        "config-kwargs",
        "dense-width",
    ],
)
def test_what_the_server_cannot_reproduce_fails_the_import_by_name(
    folders: dict[str, Path], tmp_path: Path, edit: tuple[str, Any], message: str
) -> None:
    folder = shutil.copytree(folders["distilbert-dense"], tmp_path / "edited")
    relative, change = edit
    path = folder / relative
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(ValueError) as refused:
        import_bert(folder, tmp_path / "models", "edited")
    assert message in str(refused.value)
    assert not (tmp_path / "models" / "edited").exists()


def runtime_vectors(directory: Path, texts: list[str]) -> np.ndarray:
    """The default embedding of each text as the server computes it, truncated to fit."""
    spec = load_checked(directory)
    runtime = BertRuntime(directory, spec, CPU_FP32)
    query = EmbedQuery(model=spec.name, version="", texts=tuple(texts), truncate=True)
    options = resolve_embed_options(spec, query, runtime.embed_support)
    return np.stack(
        [p.result.vectors for p in runtime.embed_batch(runtime.prepare_embed(texts, options))]
    )


def test_the_tokenizers_own_length_argument_wins_and_dense_defaults_to_tanh(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    """``processor_kwargs.model_max_length`` over ``max_seq_length`` and the tokenizer's limit,
    and a Dense config naming no activation (Tanh, as sentence-transformers takes it)."""
    folder = shutil.copytree(folders["xlmr-short-legacy"], tmp_path / "limited")
    settings = folder / "sentence_bert_config.json"
    limited = json.loads(settings.read_text()) | {"processor_kwargs": {"model_max_length": 9}}
    settings.write_text(json.dumps(limited))
    dense = shutil.copytree(folders["distilbert-dense-legacy"], tmp_path / "tanh")
    config = json.loads((dense / "2_Dense" / "config.json").read_text())
    del config["activation_function"]
    (dense / "2_Dense" / "config.json").write_text(json.dumps(config))
    long = ["the river bank flows past green fields and the old mill", "a b"]
    for source, name in ((folder, "limited"), (dense, "tanh")):
        directory = import_bert(source, tmp_path / "models", name)
        expected = SentenceTransformer(str(source), device="cpu").encode(long)
        np.testing.assert_allclose(runtime_vectors(directory, long), expected, atol=2e-5)
    assert load_checked(tmp_path / "models" / "limited" / "1").max_sequence_length == 9
