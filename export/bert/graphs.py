"""The two BERT graphs we export and their declared tensors.

* ``encoder``: every hidden state (embedding output and each layer), so a request can choose a
  layer; no vocabulary logits at all.
* ``fill_mask``: the encoder plus the MLM head applied only at the masked positions given as
  input (full-vocabulary logits at every position would cost ~8x the encoder on CPU).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertModel
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

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
MASK_POSITIONS = TensorSpec(name="mask_positions", dtype="int64", shape=(NUM_MASKS, 2))


def hidden_state_name(layer: int) -> str:
    return f"hidden_state_{layer}"


def bert_export_spec(
    num_layers: int, hidden_size: int, vocab_size: int, with_mlm: bool
) -> ExportSpec:
    """Declared graphs of a BERT with ``num_layers`` layers (plus fill-mask if it has a head)."""
    encoder = GraphExportSpec(
        role="encoder",
        file="encoder.onnx",
        inputs=TOKEN_INPUTS,
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
                inputs=(*TOKEN_INPUTS, MASK_POSITIONS),
                outputs=(
                    TensorSpec(name="logits", dtype="float32", shape=(NUM_MASKS, vocab_size)),
                ),
            )
        )
    return ExportSpec(architecture="bert", opset=OPSET, tolerance=TOLERANCE, graphs=tuple(graphs))


class BertEncoderGraph(nn.Module):
    """Token ids → every hidden state, as separate outputs."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        output = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=True,
            return_dict=True,
        )
        return tuple(output.hidden_states)


class BertFillMaskGraph(nn.Module):
    """Token ids and (row, position) pairs of the masks → vocabulary logits at those masks only."""

    def __init__(self, bert: BertModel, head: BertOnlyMLMHead) -> None:
        super().__init__()
        self.bert = bert
        self.head = head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        mask_positions: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
        ).last_hidden_state
        selected = hidden[mask_positions[:, 0], mask_positions[:, 1]]
        logits: torch.Tensor = self.head(selected)
        return logits
