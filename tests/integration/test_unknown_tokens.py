"""Text outside a BERT-family model's vocabulary, over a real channel: the characters or words
that became the model's unknown token are reported with their offsets, a text made only of
them is refused by name (Embed and FillMask) unless skip_unknown asks for it anyway, and
Tokenize shows the unknown token where it happens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from transformers import AutoTokenizer

from export.bert.exporter import import_bert
from service.client import EmbeddingClient, vectors
from tests.checkpoints import save_mlm_checkpoint
from tests.integration.harness import ServerThread, running_server
from tests.sentence_checkpoints import save_family_checkpoint, save_sentence_transformer

pytestmark = pytest.mark.slow

CHINESE = "我喜欢吃苹果"
"""Every character is [UNK] for a vocabulary trained on English words."""
MIXED = "the river 世界 bank"
"""Known words around two unknown characters (at 10 and 11)."""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A WordPiece masked LM ("wordpiece"), an XLM-R one with a Unigram tokenizer ("unigram")
    and a sentence model whose default prompt comes before every text ("prompted")."""
    root = tmp_path_factory.mktemp("unknown")
    repository = root / "models"
    checkpoints = {
        "wordpiece": save_mlm_checkpoint(root / "wordpiece"),
        "unigram": save_family_checkpoint("xlm-roberta", root / "unigram"),
        "prompted": save_sentence_transformer(
            root / "prompted",
            architecture="bert",
            pooling="mean",
            normalize=False,
            prompts={"query": "query: "},
            default_prompt_name="query",
        ),
    }
    for name, checkpoint in checkpoints.items():
        import_bert(checkpoint, repository, name)
    return {**checkpoints, "models": repository}


@pytest.fixture(scope="module")
def server(models: dict[str, Path]) -> Iterator[ServerThread]:
    with running_server(models["models"], cache="on") as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(server.target, timeout=30) as connected:
        yield connected


def refusal(call: object) -> grpc.RpcError:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as refused:
        call()
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    return refused.value


@pytest.mark.parametrize(("model", "unk"), [("wordpiece", "[UNK]"), ("unigram", "<unk>")])
def test_a_text_of_unknown_tokens_only_is_refused_by_name(
    client: EmbeddingClient, model: str, unk: str
) -> None:
    details = str(refusal(lambda: client.embed([CHINESE], model)).details())
    assert model in details and "not trained on this script" in details
    assert unk in details and "skip_unknown" in details
    assert "characters its vocabulary lacks: '我', '喜'" in details


def test_a_word_too_long_to_split_is_not_blamed_on_the_script(client: EmbeddingClient) -> None:
    word = "ab" * 60  # known letters, longer than WordPiece reads as one word
    details = str(refusal(lambda: client.embed([word], "wordpiece")).details())
    assert "cannot split these words" in details and "script" not in details
    (embedding,) = client.embed([word], "wordpiece", skip_unknown=True).embeddings
    assert list(embedding.unknown_tokens) == [word]


def test_skip_unknown_embeds_it_anyway_and_reports_every_character(
    client: EmbeddingClient,
) -> None:
    response = client.embed([CHINESE, "他们在河边走"], "wordpiece", skip_unknown=True)
    first, second = response.embeddings
    assert list(first.unknown_tokens) == list(CHINESE)
    assert list(first.unknown_offsets) == [bound for i in range(6) for bound in (i, i + 1)]
    assert list(first.tokens) == ["[CLS]", *["[UNK]"] * 6, "[SEP]"]
    # what the caller accepted: the model sees nothing but [UNK], whatever the characters
    same, other = vectors(response)
    np.testing.assert_array_equal(same, other)
    assert list(second.unknown_tokens) == list("他们在河边走")


def test_known_words_beside_unknown_ones_are_embedded_and_the_unknown_reported(
    client: EmbeddingClient,
) -> None:
    (embedding,) = client.embed([MIXED], "wordpiece").embeddings
    assert list(embedding.unknown_tokens) == ["世", "界"]
    assert list(embedding.unknown_offsets) == [10, 11, 11, 12]
    (known,) = client.embed(["the river bank"], "wordpiece").embeddings
    assert not known.unknown_tokens and not known.unknown_offsets


def test_a_cached_embedding_keeps_its_unknown_tokens(client: EmbeddingClient) -> None:
    text = "the 河 bank flows"
    computed = client.embed([text], "wordpiece").embeddings[0]
    cached = client.embed([text], "wordpiece").embeddings[0]
    assert cached.cached and not computed.cached
    assert list(cached.unknown_tokens) == list(computed.unknown_tokens) == ["河"]
    assert list(cached.unknown_offsets) == list(computed.unknown_offsets) == [4, 5]


def test_offsets_are_the_texts_own_after_a_prompt(client: EmbeddingClient) -> None:
    (embedding,) = client.embed([MIXED], "prompted").embeddings
    (alone,) = client.tokenize([MIXED], "prompted").results
    assert len(embedding.tokens) > len(alone.tokens)  # the default prompt came first
    assert list(embedding.unknown_tokens) == ["世", "界"]
    assert list(embedding.unknown_offsets) == [10, 11, 11, 12]
    details = str(refusal(lambda: client.embed([CHINESE], "prompted")).details())
    assert "not trained on this script" in details  # the prompt's words are not the text's


def test_a_unigram_model_reports_the_text_piece_and_shows_its_unknown_token(
    client: EmbeddingClient, models: dict[str, Path]
) -> None:
    (embedding,) = client.embed([MIXED], "unigram").embeddings
    assert "<unk>" in embedding.tokens
    offsets = list(embedding.unknown_offsets)
    pieces = [MIXED[start:end] for start, end in zip(offsets[::2], offsets[1::2], strict=True)]
    assert pieces == list(embedding.unknown_tokens) and "".join(pieces).strip() == "世界"
    tokenizer = AutoTokenizer.from_pretrained(models["unigram"])
    (tokenized,) = client.tokenize([MIXED], "unigram").results
    expected = tokenizer(MIXED)["input_ids"]
    assert list(tokenized.ids) == expected
    assert list(tokenized.tokens) == tokenizer.convert_ids_to_tokens(expected)


def test_tokenize_shows_the_unknown_token_where_it_happens(client: EmbeddingClient) -> None:
    (tokenized,) = client.tokenize([MIXED], "wordpiece").results
    unknown = [i for i, token in enumerate(tokenized.tokens) if token == "[UNK]"]
    assert len(unknown) == 2
    spans = [tuple(tokenized.offsets[2 * i : 2 * i + 2]) for i in unknown]
    assert [MIXED[start:end] for start, end in spans] == ["世", "界"]


@pytest.mark.parametrize(("model", "mask"), [("wordpiece", "[MASK]"), ("unigram", "<mask>")])
def test_fill_mask_refuses_a_text_whose_every_token_but_the_mask_is_unknown(
    client: EmbeddingClient, model: str, mask: str
) -> None:
    details = str(refusal(lambda: client.fill_mask([f"{CHINESE}{mask}"], model)).details())
    assert model in details and "not trained on this script" in details
    assert "skip_unknown" not in details  # FillMask has no such option
    (result,) = client.fill_mask([f"the river {mask} 世界"], model, top_k=2).results
    assert len(result.masks[0].predictions) == 2  # known words beside them: answered
    (alone,) = client.fill_mask([mask], model, top_k=2).results  # no word at all: not unknown
    assert len(alone.masks[0].predictions) == 2
