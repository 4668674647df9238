"""The two graphs of a BERT-family model we export, and their declared tensors.

* ``encoder``: every hidden state (embedding output and each layer), so a request can choose a
  layer; no vocabulary logits at all.
* ``fill_mask``: the encoder plus the MLM head applied only at the masked positions given as
  input (full-vocabulary logits at every position would cost ~8x the encoder on CPU).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from export.spec import BATCH, SEQUENCE, ExportSpec, GraphExportSpec
from modelrepo import TensorSpec

OPSET = 17
TOLERANCE = 1e-4
NUM_MASKS = "num_masks"

TOKEN_INPUTS = (
    TensorSpec(name="input_ids", dtype="int64", shape=(BATCH, SEQUENCE)),
    TensorSpec(name="attention_mask", dtype="int64", shape=(BATCH, SEQUENCE)),
    TensorSpec(name="token_type_ids", dtype="int64", shape=(BATCH, SEQUENCE)),
)
"""What the encoder takes; a member without token types (DistilBERT) takes the first two."""
MASK_POSITIONS = TensorSpec(name="mask_positions", dtype="int64", shape=(NUM_MASKS, 2))


def hidden_state_name(layer: int) -> str:
    return f"hidden_state_{layer}"


def bert_export_spec(
    num_layers: int, hidden_size: int, vocab_size: int, with_mlm: bool, token_types: bool = True
) -> ExportSpec:
    """Declared graphs of a BERT-family model with ``num_layers`` layers (plus fill-mask if it
    has a head); ``token_types``: whether its encoder takes ``token_type_ids``."""
    inputs = TOKEN_INPUTS if token_types else TOKEN_INPUTS[:2]
    encoder = GraphExportSpec(
        role="encoder",
        file="encoder.onnx",
        inputs=inputs,
        outputs=tuple(
            TensorSpec(
                name=hidden_state_name(layer), dtype="float32", shape=(BATCH, SEQUENCE, hidden_size)
            )
            for layer in range(num_layers + 1)
        ),
    )
    graphs = [encoder]
    if with_mlm:
        graphs.append(
            GraphExportSpec(
                role="fill_mask",
                file="fill_mask.onnx",
                inputs=(*inputs, MASK_POSITIONS),
                outputs=(
                    TensorSpec(name="logits", dtype="float32", shape=(NUM_MASKS, vocab_size)),
                ),
            )
        )
    return ExportSpec(architecture="bert", opset=OPSET, tolerance=TOLERANCE, graphs=tuple(graphs))


def _encoder_inputs(tokens: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    names = ("input_ids", "attention_mask", "token_type_ids")
    return dict(zip(names, tokens, strict=False))


class BertEncoderGraph(nn.Module):
    """Token ids (and mask, and token types where the model has them) → every hidden state,
    as separate outputs."""

    def __init__(self, encoder: PreTrainedModel) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, *tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.encoder(
            **_encoder_inputs(tokens), output_hidden_states=True, return_dict=True
        )
        return tuple(output.hidden_states)


class BertFillMaskGraph(nn.Module):
    """Token inputs and (row, position) pairs of the masks → vocabulary logits at those masks
    only; ``head`` is the masked LM's head at given hidden states."""

    def __init__(self, encoder: PreTrainedModel, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *tokens, mask_positions = inputs
        hidden = self.encoder(**_encoder_inputs(tuple(tokens)), return_dict=True).last_hidden_state
        selected = hidden[mask_positions[:, 0], mask_positions[:, 1]]
        logits: torch.Tensor = self.head(selected)
        return logits
