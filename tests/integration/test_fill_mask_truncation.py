"""FillMask on a text over the model's limit, over a real channel: with truncate the text is cut
around its masks (special tokens kept) and the fills are transformers' on that window; masks
too far apart for one window, or a long text without truncate, are refused with a message
that names only what FillMask offers."""

from __future__ import annotations

import warnings
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertForMaskedLM

from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient
from service.client.messages import fill_mask_request
from tests.checkpoints import WORDS

LIMIT = 128  # tiny-mlm's maximum, special tokens included
WINDOW = LIMIT - 2  # besides [CLS] and [SEP]


def words(count: int, start: int = 0) -> list[str]:
    return [WORDS[(start + i) % len(WORDS)] for i in range(count)]


def fill(
    client: EmbeddingClient, texts: list[str], truncate: bool, top_k: int = 5
) -> pb.FillMaskResponse:
    request = fill_mask_request(texts, "tiny-mlm", top_k=top_k, truncate=truncate)
    response: pb.FillMaskResponse = client.stub.FillMask(request, timeout=30)
    return response


def expected_fills(checkpoint: Path, ids: list[int], top_k: int = 5) -> list[list[int]]:
    """transformers' top-k token ids at each mask of ``ids`` (one sequence, no padding)."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BertForMaskedLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    positions = np.flatnonzero(np.asarray(ids) == tokenizer.mask_token_id)
    return [np.argsort(-logits[position])[:top_k].tolist() for position in positions]


def window(checkpoint: Path, text: str, start: int) -> list[int]:
    """The text's ids cut to [CLS] + WINDOW tokens from ``start`` (of the body) + [SEP]."""
    ids: list[int] = AutoTokenizer.from_pretrained(checkpoint)(text)["input_ids"]
    assert len(ids) > LIMIT
    return [ids[0], *ids[1:-1][start : start + WINDOW], ids[-1]]


def body_length(checkpoint: Path, text: str) -> int:
    return len(AutoTokenizer.from_pretrained(checkpoint)(text)["input_ids"]) - 2


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_long_text_is_cut_around_its_mask(
    client: EmbeddingClient, imported: dict[str, Path], where: str
) -> None:
    checkpoint = imported["tiny-mlm"]
    before = {"start": 3, "middle": 150, "end": 297}[where]
    text = " ".join([*words(before), "[MASK]", *words(300 - before, start=before)])
    n = body_length(checkpoint, text)
    mask = AutoTokenizer.from_pretrained(checkpoint)(text)["input_ids"][1:-1].index(
        AutoTokenizer.from_pretrained(checkpoint).mask_token_id
    )
    # the window is centred on the mask, and moved inside the text at either end
    start = min(max(0, mask - (WINDOW - 1) // 2), n - WINDOW)
    (result,) = fill(client, [text], truncate=True).results
    (predictions,) = result.masks
    assert result.truncated
    ids = window(checkpoint, text, start)
    assert [p.token_id for p in predictions.predictions] == expected_fills(checkpoint, ids)[0]
    for prediction in predictions.predictions:  # the whole text, its mask filled
        assert prediction.sequence.startswith(" ".join(words(before)))
        assert prediction.sequence.endswith(" ".join(words(300 - before, start=before)))


def test_several_masks_stay_in_the_window(
    client: EmbeddingClient, imported: dict[str, Path]
) -> None:
    checkpoint = imported["tiny-mlm"]
    text = " ".join([*words(200), "[MASK]", *words(40), "[MASK]", *words(200)])
    (result,) = fill(client, [text], truncate=True, top_k=3).results
    assert result.truncated and len(result.masks) == 2
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    body = tokenizer(text)["input_ids"][1:-1]
    first, last = (i for i, token in enumerate(body) if token == tokenizer.mask_token_id)
    start = min(max(0, first - (WINDOW - (last - first + 1)) // 2), len(body) - WINDOW)
    expected = expected_fills(checkpoint, window(checkpoint, text, start), top_k=3)
    assert [[p.token_id for p in mask.predictions] for mask in result.masks] == expected


def test_a_text_that_fits_is_not_cut(client: EmbeddingClient) -> None:
    text = "the river [MASK] flows past green fields"
    (cut,) = fill(client, [text], truncate=True).results
    (whole,) = fill(client, [text], truncate=False).results
    assert not cut.truncated and not whole.truncated
    assert cut.masks == whole.masks


def test_masks_too_far_apart_for_one_window_are_refused(client: EmbeddingClient) -> None:
    text = " ".join(["[MASK]", *words(200), "[MASK]"])
    with pytest.raises(grpc.RpcError) as refused:
        fill(client, [text], truncate=True)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = str(refused.value.details())
    assert "texts[0]" in details and f"{LIMIT}" in details and "closer together" in details


def test_a_long_text_without_truncate_names_only_fill_mask_options(
    client: EmbeddingClient,
) -> None:
    text = " ".join([*words(300), "[MASK]"])
    with pytest.raises(grpc.RpcError) as refused:
        fill(client, [text], truncate=False)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = str(refused.value.details())
    assert "set truncate" in details and f"{LIMIT}" in details
    assert "prompt" not in details and "skip_unknown" not in details
    fill(client, [text], truncate=True)  # what it says works
