"""``resolve_embed_options``: the one check of poolings, layers and layer weights."""

from __future__ import annotations

from typing import get_args

import pytest

from modelrepo import DenseLayer, GraphSpec, ModelSpec, SentenceHead, TensorSpec
from modelrepo.repository import Architecture
from service.domain import EmbedOptions, EmbedQuery, Pooling, served_dim, vector_dim
from service.domain import resolve_embed_options as resolve_with
from service.errors import InvalidArgument
from service.runtime.registry import RUNTIMES, embed_support

IDS = TensorSpec(name="input_ids", dtype="int64", shape=("batch_size", "sequence_length"))
OUT = TensorSpec(name="vectors", dtype="float32", shape=("batch_size", "sequence_length", 8))


def spec_of(
    architecture: Architecture, num_layers: int, default_pooling: str = "mean"
) -> ModelSpec:
    return ModelSpec(
        name=f"tiny-{architecture}",
        version=1,
        architecture=architecture,
        capabilities=("embed",),
        graphs={"encoder": GraphSpec(file="encoder.onnx", inputs=(IDS,), outputs=(OUT,))},
        hidden_size=8,
        num_layers=num_layers,
        default_layers=(num_layers,),
        default_pooling=default_pooling,
        max_sequence_length=16,
        opset=17,
        tolerance=1e-4,
        source="test",
        source_checksum="sha256:" + "0" * 64,
    )


BERT, ELMO, WORD2VEC = spec_of("bert", 2), spec_of("elmo", 2), spec_of("word2vec", 0)


def resolve_embed_options(spec: ModelSpec, query: EmbedQuery) -> EmbedOptions:
    """The options as resolved for the architecture's runtime, which declares its support."""
    return resolve_with(spec, query, embed_support(spec.architecture))


def query(**fields: object) -> EmbedQuery:
    return EmbedQuery(model="m", version="", texts=("a b",), **fields)  # type: ignore[arg-type]


def test_every_architecture_declares_what_it_supports() -> None:
    assert set(RUNTIMES) == set(get_args(Architecture))


def test_defaults_come_from_the_spec() -> None:
    assert resolve_embed_options(BERT, query()) == EmbedOptions(Pooling.MEAN, layers=(2,))
    options = resolve_embed_options(ELMO, query(layers=(1, 0, 1), normalize=True))
    assert options == EmbedOptions(Pooling.MEAN, layers=(1, 0), normalize=True)
    mixed = resolve_embed_options(BERT, query(layer_weights=(0.0, 1.0, 2.0)))
    assert mixed.layers == () and mixed.layer_weights == (0.0, 1.0, 2.0)


@pytest.mark.parametrize("pooling", list(Pooling))
def test_bert_takes_every_pooling(pooling: Pooling) -> None:
    assert resolve_embed_options(BERT, query(pooling=pooling)).pooling is pooling


@pytest.mark.parametrize(
    ("spec", "message"),
    [(ELMO, "pooling CLS is not defined"), (WORD2VEC, "no \\[CLS\\] token")],
)
def test_cls_is_refused_without_a_sentence_token(spec: ModelSpec, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        resolve_embed_options(spec, query(pooling=Pooling.CLS))
    for pooling in (Pooling.MEAN, Pooling.MAX, Pooling.NONE):
        assert resolve_embed_options(spec, query(pooling=pooling)).pooling is pooling


def test_a_default_pooling_the_architecture_refuses_is_refused_too() -> None:
    with pytest.raises(InvalidArgument, match="pooling CLS is not defined for tiny-elmo"):
        resolve_embed_options(spec_of("elmo", 2, default_pooling="cls"), query())


@pytest.mark.parametrize(
    ("spec", "fields", "message"),
    [
        (BERT, {"layers": (3,)}, "layer 3 does not exist in tiny-bert: choose layers from 0"),
        (BERT, {"layers": (1,), "layer_weights": (1.0, 1.0, 1.0)}, "not both"),
        (ELMO, {"layer_weights": (1.0, 1.0)}, "needs 3 weights"),
        (ELMO, {"layer_weights": (1.0, float("inf"), 1.0)}, "finite"),
        (WORD2VEC, {"layers": (1,)}, "layer 1 does not exist in tiny-word2vec"),
        (WORD2VEC, {"layer_weights": (1.0,)}, "single layer"),
        (WORD2VEC, {"layer_weights": (1.0, 1.0)}, "needs 1 weights"),
        # the pooling is checked before layer_weights, as a caller with both faults was told
        (WORD2VEC, {"pooling": Pooling.CLS, "layer_weights": (1.0,)}, "no \\[CLS\\] token"),
    ],
)
def test_bad_layers_are_refused(spec: ModelSpec, fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        resolve_embed_options(spec, query(**fields))


def test_word2vec_takes_its_only_layer() -> None:
    assert resolve_embed_options(WORD2VEC, query(layers=(0,))).layers == (0,)


SENTENCE = BERT.model_copy(
    update={
        "sentence": SentenceHead(
            normalize=True,
            dense=(
                DenseLayer(file="dense_0.npz", in_features=8, out_features=4, activation="tanh"),
            ),
            prompts={"query": "query: ", "document": ""},
            default_prompt_name="query",
        )
    }
)


def test_a_sentence_models_defaults_are_its_authors() -> None:
    assert resolve_embed_options(SENTENCE, query()) == EmbedOptions(
        Pooling.MEAN, layers=(2,), normalize=True, prompt_name="query"
    )
    chosen = resolve_embed_options(
        SENTENCE, query(normalize=False, prompt_name="document", dimensions=3)
    )
    assert chosen == EmbedOptions(
        Pooling.MEAN, layers=(2,), normalize=False, prompt_name="document", dimensions=3
    )
    assert served_dim(SENTENCE, chosen) == 3
    assert served_dim(SENTENCE, resolve_embed_options(SENTENCE, query())) == 4  # after Dense
    assert vector_dim(SENTENCE, Pooling.NONE) == 8  # token vectors: the encoder's, no Dense


def test_a_model_without_prompts_or_normalisation_defaults_to_neither() -> None:
    options = resolve_embed_options(BERT, query())
    assert (options.normalize, options.prompt_name, options.dimensions) == (False, "", 0)


@pytest.mark.parametrize(
    ("spec", "fields", "message"),
    [
        (SENTENCE, {"prompt_name": "summary"}, "its prompts: ['document', 'query']"),
        (BERT, {"prompt_name": "query"}, "is not a prompt of tiny-bert; its prompts: none"),
        (SENTENCE, {"dimensions": 5}, "dimensions is 5, but tiny-bert answers 4 values"),
        (
            SENTENCE,
            {"dimensions": 9, "pooling": Pooling.NONE},
            "dimensions is 9, but tiny-bert answers 8 values",
        ),
    ],
)
def test_prompts_and_dimensions_the_model_lacks_are_refused(
    spec: ModelSpec, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        resolve_embed_options(spec, query(**fields))
    assert message in str(refused.value)
