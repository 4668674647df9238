"""Every architecture of the BERT family, imported from a ``save_pretrained`` checkpoint and
served over a real channel, answers as transformers does on the same checkpoint: its own
tokens, every layer's states, pooled vectors, and fill-mask with its own mask token."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel

from export.bert.exporter import import_bert
from export.bert.family import FAMILY
from modelrepo import load_checked
from service.client import EmbeddingClient, vectors
from service.runtime.bert import BertRuntime
from service.runtime.session import CPU_FP32
from tests.integration.harness import ServerThread, running_server
from tests.sentence_checkpoints import ARCHITECTURES, save_family_checkpoint

pytestmark = pytest.mark.slow

TEXTS = [
    "the river bank flows past green fields",
    "Children play football, 42 times!",
    "the old mill",
]
MEMBERS = [
    pytest.param("bert", marks=pytest.mark.validates_architecture("bert")),
    pytest.param("roberta", marks=pytest.mark.validates_architecture("roberta")),
    pytest.param("xlm-roberta", marks=pytest.mark.validates_architecture("xlm-roberta")),
    pytest.param("distilbert", marks=pytest.mark.validates_architecture("distilbert")),
    pytest.param("electra", marks=pytest.mark.validates_architecture("electra")),
]


def test_every_member_of_the_family_is_tested_here() -> None:
    assert set(FAMILY) == set(ARCHITECTURES) == {param.values[0] for param in MEMBERS}


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each architecture's random masked LM, saved as transformers saves it and imported as
    ``<architecture>-mlm``; ``models`` is the repository."""
    root = tmp_path_factory.mktemp("family")
    checkpoints = {arch: save_family_checkpoint(arch, root / arch) for arch in ARCHITECTURES}
    for arch, checkpoint in checkpoints.items():
        import_bert(checkpoint, root / "models", f"{arch}-mlm")
    return {**checkpoints, "models": root / "models"}


@pytest.fixture(scope="module")
def server(family: dict[str, Path]) -> Iterator[ServerThread]:
    with running_server(family["models"]) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(server.target, timeout=30) as connected:
        yield connected


def masked_lm(checkpoint: Path) -> PreTrainedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model: PreTrainedModel = AutoModelForMaskedLM.from_pretrained(checkpoint).eval()
    return model


def hidden_states(checkpoint: Path, texts: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """transformers' states of every layer (layer, text, token, dim) and the attention mask."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        output = masked_lm(checkpoint)(**batch, output_hidden_states=True)
    return [state.numpy() for state in output.hidden_states], batch["attention_mask"].numpy()


@pytest.mark.parametrize("architecture", MEMBERS)
def test_tokens_are_the_checkpoints_own(
    client: EmbeddingClient, family: dict[str, Path], architecture: str
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(family[architecture])
    response = client.tokenize(TEXTS, f"{architecture}-mlm")
    for text, tokenized in zip(TEXTS, response.results, strict=True):
        expected = tokenizer(text)["input_ids"]
        assert list(tokenized.ids) == expected
        names = tokenizer.convert_ids_to_tokens(expected)
        known = [i for i, token_id in enumerate(expected) if token_id != tokenizer.unk_token_id]
        # an unknown piece keeps its text (SentencePiece's "C"), transformers names it <unk>
        assert [tokenized.tokens[i] for i in known] == [names[i] for i in known]


@pytest.mark.parametrize("architecture", MEMBERS)
def test_every_layer_and_pooling_equals_transformers(
    client: EmbeddingClient, family: dict[str, Path], architecture: str
) -> None:
    states, masks = hidden_states(family[architecture], TEXTS)
    model = f"{architecture}-mlm"
    lengths = masks.sum(axis=1)
    for layer, layer_states in enumerate(states):
        response = client.embed(TEXTS, model, pooling="none", layers=[layer])
        for got, expected, length in zip(vectors(response), layer_states, lengths, strict=True):
            np.testing.assert_allclose(got, expected[:length], rtol=0, atol=1e-4)
    last = states[-1]
    weights = masks[..., None].astype(np.float64)
    mean = (last * weights).sum(axis=1) / weights.sum(axis=1)
    served_mean = np.stack(vectors(client.embed(TEXTS, model)))  # the default: mean, last layer
    np.testing.assert_allclose(served_mean, mean, rtol=0, atol=1e-4)
    served_cls = np.stack(vectors(client.embed(TEXTS, model, pooling="cls")))
    np.testing.assert_allclose(served_cls, last[:, 0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("architecture", MEMBERS)
def test_fill_mask_with_the_models_own_mask_equals_transformers(
    client: EmbeddingClient, family: dict[str, Path], architecture: str
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(family[architecture])
    mask = tokenizer.mask_token
    texts = [f"the river {mask} flows past green fields", f"{mask} play football"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = masked_lm(family[architecture])(**batch).logits.numpy()
    response = client.fill_mask(texts, f"{architecture}-mlm", top_k=5)
    for row, result in enumerate(response.results):
        (position,) = np.flatnonzero(batch["input_ids"][row].numpy() == tokenizer.mask_token_id)
        scores = logits[row, position]
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        expected = np.argsort(-scores)[:5]
        (predictions,) = result.masks
        assert [p.token_id for p in predictions.predictions] == expected.tolist()
        np.testing.assert_allclose(
            [p.score for p in predictions.predictions], probabilities[expected], atol=1e-5
        )
        ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].clone()
        for prediction in predictions.predictions:
            assert prediction.token == tokenizer.convert_ids_to_tokens(prediction.token_id)
            ids[position] = prediction.token_id  # the sequence as transformers decodes it
            assert prediction.sequence == tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("architecture", MEMBERS)
def test_the_export_declares_what_the_member_takes(
    family: dict[str, Path], architecture: str
) -> None:
    version = family["models"] / f"{architecture}-mlm" / "1"
    spec = json.loads((version / "spec.json").read_text())
    report = json.loads((version / "validation.json").read_text())
    assert spec["extra"]["model_type"] == architecture
    inputs = [tensor["name"] for tensor in spec["graphs"]["encoder"]["inputs"]]
    with_types = ["input_ids", "attention_mask", "token_type_ids"]
    assert inputs == (with_types[:2] if architecture == "distilbert" else with_types)
    assert spec["max_sequence_length"] == 128  # the position table less RoBERTa's offset
    assert report["passed"] and set(report["graphs"]) == {"encoder", "fill_mask"}
    for graph in report["graphs"].values():
        assert max(graph["max_abs_diff"].values()) <= 1e-4


def test_an_architecture_outside_the_family_is_refused_by_name(
    family: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = shutil.copytree(family["bert"], tmp_path / "gpt2")
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    with pytest.raises(ValueError, match=r"'gpt2' is not supported.*bert, distilbert, electra"):
        import_bert(checkpoint, tmp_path / "models", "gpt2")
    assert not (tmp_path / "models" / "gpt2").exists()


def test_a_long_text_is_refused_at_the_members_limit(client: EmbeddingClient) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        client.embed(["the old mill " * 60], "roberta-mlm")
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "128" in str(refused.value.details())


@pytest.mark.parametrize(
    ("architecture", "text"),
    [("xlm-roberta", "the river  bank ,  42"), ("bert", "The River BANK flows")],
)
def test_the_served_tokenizer_is_the_one_transformers_builds(
    family: dict[str, Path], tmp_path: Path, architecture: str, text: str
) -> None:
    """transformers 5 rebuilds parts of a checkpoint's pipeline (XLM-R's pre-tokenizer, BERT's
    normaliser from do_lower_case, true by default): a tokenizer.json that says otherwise, as
    older hub files do, is served as transformers tokenizes, not as the file says."""
    checkpoint = shutil.copytree(family[architecture], tmp_path / "checkpoint")
    pipeline = json.loads((checkpoint / "tokenizer.json").read_text())
    if architecture == "xlm-roberta":  # a Metaspace alone: double spaces become a "▁" token
        pipeline["pre_tokenizer"] = {
            "type": "Metaspace",
            "replacement": "▁",
            "prepend_scheme": "always",
            "split": True,
        }
    else:  # a cased normaliser, and no do_lower_case in tokenizer_config.json
        pipeline["normalizer"]["lowercase"] = False
        settings = json.loads((checkpoint / "tokenizer_config.json").read_text())
        settings.pop("do_lower_case", None)
        (checkpoint / "tokenizer_config.json").write_text(json.dumps(settings))
    (checkpoint / "tokenizer.json").write_text(json.dumps(pipeline))
    as_written = Tokenizer.from_file(str(checkpoint / "tokenizer.json")).encode(text).ids
    expected = AutoTokenizer.from_pretrained(checkpoint)(text)["input_ids"]
    assert as_written != expected  # the file alone would tokenize otherwise
    directory = import_bert(checkpoint, tmp_path / "models", "rebuilt")
    runtime = BertRuntime(directory, load_checked(directory), CPU_FP32)
    (served,) = runtime.tokenize([text])
    assert list(served.ids) == expected
