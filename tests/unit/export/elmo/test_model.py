"""Padding, state and layout semantics of ``ElmoBiLm``; ``ScalarMix``; sentence boundaries."""

from __future__ import annotations

import pytest
import torch

from export.elmo.model import ElmoBiLm, ScalarMix, remove_sentence_boundaries
from export.elmo.options import ElmoOptions
from modelrepo.elmo_characters import batch_char_ids, tokenize

SENTENCES = [
    "The cat sat on the mat .",
    "Short one",
    "A much longer sentence , with more tokens than any other one in this batch .",
]


def _run(
    model: ElmoBiLm, sentences: list[str], state: tuple[torch.Tensor, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = torch.from_numpy(batch_char_ids([tokenize(s) for s in sentences]))
    initial_c, initial_h = state if state is not None else model.zero_state(len(sentences))
    with torch.no_grad():
        layers, mask, final_c, final_h = model(ids, initial_c, initial_h)
    return layers, mask, final_c, final_h


def test_output_layout(allennlp_model: ElmoBiLm) -> None:
    layers, mask, final_c, final_h = _run(allennlp_model, SENTENCES)
    longest = len(SENTENCES[2].split()) + 2
    assert layers.shape == (3, 3, longest, 32)
    assert mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [len(s.split()) + 2 for s in SENTENCES]
    assert final_c.shape == (4, 3, 64)
    assert final_h.shape == (4, 3, 16)
    torch.testing.assert_close(layers[0, ..., :16], layers[0, ..., 16:], rtol=0, atol=0)
    assert not layers[:, ~mask].any(), "padded positions must be zero in every layer"


@pytest.mark.parametrize("row", range(len(SENTENCES)))
def test_sentence_alone_equals_sentence_in_padded_batch(allennlp_model: ElmoBiLm, row: int) -> None:
    batch_layers, batch_mask, batch_c, batch_h = _run(allennlp_model, SENTENCES)
    alone_layers, _, alone_c, alone_h = _run(allennlp_model, [SENTENCES[row]])
    length = alone_layers.shape[2]
    assert batch_mask[row, :length].all()
    # Both directions, every layer (the backward half would break if reversal ignored padding).
    torch.testing.assert_close(
        batch_layers[:, row, :length], alone_layers[:, 0], rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(batch_c[:, row], alone_c[:, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batch_h[:, row], alone_h[:, 0], rtol=1e-5, atol=1e-6)


def test_state_is_frozen_past_the_end_of_a_row(allennlp_model: ElmoBiLm) -> None:
    """A row padded to a longer batch ends in the same state as the row run alone."""
    _, _, padded_c, padded_h = _run(allennlp_model, [SENTENCES[1], SENTENCES[2]])
    _, _, alone_c, alone_h = _run(allennlp_model, [SENTENCES[1]])
    torch.testing.assert_close(padded_c[:, :1], alone_c, rtol=0, atol=1e-6)
    torch.testing.assert_close(padded_h[:, :1], alone_h, rtol=0, atol=1e-6)


def test_initial_state_is_used_per_row(allennlp_model: ElmoBiLm) -> None:
    first = _run(allennlp_model, SENTENCES[:2])
    continued = _run(allennlp_model, SENTENCES[1:], state=(first[2], first[3]))
    fresh = _run(allennlp_model, SENTENCES[1:])
    assert not torch.allclose(continued[0][1:], fresh[0][1:])
    # An all-padding row keeps its state untouched.
    ids = torch.zeros(1, 4, 50, dtype=torch.long)
    with torch.no_grad():
        layers, mask, final_c, final_h = allennlp_model(ids, first[2][:, :1], first[3][:, :1])
    assert not mask.any()
    assert not layers.any()
    assert torch.equal(final_c, first[2][:, :1])
    assert torch.equal(final_h, first[3][:, :1])


def test_remove_sentence_boundaries(allennlp_model: ElmoBiLm) -> None:
    layers, mask, _, _ = _run(allennlp_model, SENTENCES)
    inner, inner_mask = remove_sentence_boundaries(layers, mask)
    assert inner.shape == (3, 3, layers.shape[2] - 2, 32)
    for row, sentence in enumerate(SENTENCES):
        n_tokens = len(sentence.split())
        assert inner_mask[row].sum() == n_tokens
        torch.testing.assert_close(inner[:, row, :n_tokens], layers[:, row, 1 : n_tokens + 1])
        assert not inner[:, row, n_tokens:].any()


def _small_options(**lstm: object) -> ElmoOptions:
    return ElmoOptions.from_dict(
        {
            "lstm": {"dim": 8, "projection_dim": 6, "n_layers": 3, **lstm},
            "char_cnn": {
                "embedding": {"dim": 3},
                "filters": [[1, 2], [3, 4]],
                "n_highway": 1,
                "n_characters": 262,
                "max_characters_per_token": 50,
                "activation": "tanh",
            },
        }
    )


@pytest.mark.parametrize(
    "lstm",
    [
        {"use_skip_connections": True, "cell_clip": None, "proj_clip": None},
        {"use_skip_connections": False, "cell_clip": 0.5, "proj_clip": 0.1},
    ],
)
def test_scripted_model_equals_eager(lstm: dict[str, object]) -> None:
    """Other option combinations (tanh, no clipping, 3 layers, no projection) also script."""
    torch.manual_seed(0)
    model = ElmoBiLm(_small_options(**lstm)).eval()
    assert isinstance(model.token_embedder.projection, torch.nn.Identity)  # 6 filters == proj
    ids = torch.from_numpy(batch_char_ids([["a", "bc"], ["def", "g", "hi", "j"]]))
    initial_c, initial_h = (torch.randn_like(state) for state in model.zero_state(2))
    scripted = torch.jit.script(model)
    with torch.no_grad():
        eager_outputs = model(ids, initial_c, initial_h)
        scripted_outputs = scripted(ids, initial_c, initial_h)
    for eager_out, scripted_out in zip(eager_outputs, scripted_outputs, strict=True):
        torch.testing.assert_close(scripted_out, eager_out, rtol=0, atol=1e-6)
    if lstm["proj_clip"] is not None:
        assert eager_outputs[3].abs().max() <= 0.1


def test_scalar_mix_starts_as_the_mean() -> None:
    layers = torch.randn(3, 2, 4, 5)
    mix = ScalarMix(3)
    torch.testing.assert_close(mix(layers), layers.mean(dim=0))
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.0, 0.0, 50.0]))
        mix.gamma.fill_(2.0)
    torch.testing.assert_close(mix(layers), 2.0 * layers[2], rtol=1e-4, atol=1e-5)


def test_scalar_mix_layer_norm_uses_unmasked_elements_of_the_batch() -> None:
    torch.manual_seed(0)
    layers = torch.randn(2, 2, 3, 4) * 5 + 3
    mask = torch.tensor([[True, True, False], [True, False, False]])
    mix = ScalarMix(2, do_layer_norm=True)
    normed = [
        (layers[j] - layers[j][mask].mean()) / layers[j][mask].std(unbiased=False) for j in range(2)
    ]
    expected = (normed[0] + normed[1]) / 2
    torch.testing.assert_close(mix(layers, mask)[mask], expected[mask], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs the mask"):
        mix(layers)
    torch.jit.script(mix)
