"""The BERT family: each architecture's declaration for export, like optimum's per-architecture
configs. What differs between them is declared here and nowhere else: whether the encoder takes
token types, how far position ids are offset (RoBERTa and XLM-R count from their padding id),
and where the masked-LM head is and how it is applied at the masks.

Serving needs none of this: every member is served by the same runtime, fed the inputs its
graphs declare, with its own tokenizer (``tokenizer.json``) and special tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

Head = Callable[[PreTrainedModel, torch.Tensor], torch.Tensor]
"""A masked LM's head at given hidden states: (masks, hidden) → (masks, vocab) logits."""


def _part(mlm: PreTrainedModel, name: str) -> nn.Module:
    module = getattr(mlm, name)
    assert isinstance(module, nn.Module), name
    return module


def _bert_head(mlm: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    logits: torch.Tensor = _part(mlm, "cls")(hidden)
    return logits


def _roberta_head(mlm: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    logits: torch.Tensor = _part(mlm, "lm_head")(hidden)
    return logits


def _distilbert_head(mlm: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    transformed = _part(mlm, "vocab_transform")(hidden)
    transformed = _part(mlm, "vocab_layer_norm")(_part(mlm, "activation")(transformed))
    logits: torch.Tensor = _part(mlm, "vocab_projector")(transformed)
    return logits


def _electra_head(mlm: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    predictions = _part(mlm, "generator_predictions")(hidden)
    logits: torch.Tensor = _part(mlm, "generator_lm_head")(predictions)
    return logits


@dataclass(frozen=True)
class FamilyMember:
    """One architecture of the family, as ``config.json``'s ``model_type`` names it."""

    model_type: str
    token_types: bool
    """The encoder takes ``token_type_ids`` (DistilBERT's does not)."""
    head: Head
    head_prefixes: tuple[str, ...]
    """Weight names of the masked-LM head: a checkpoint missing them has no head."""
    position_offset: Callable[[PretrainedConfig], int] = lambda config: 0
    """Positions the model reserves before the first token (RoBERTa: its padding id + 1)."""

    def max_positions(self, config: PretrainedConfig) -> int:
        """Tokens a text may have, special tokens included, as the position table allows."""
        return int(config.max_position_embeddings) - self.position_offset(config)


def _padding_offset(config: PretrainedConfig) -> int:
    return int(config.pad_token_id) + 1


FAMILY: dict[str, FamilyMember] = {
    "bert": FamilyMember("bert", True, _bert_head, ("cls.",)),
    "roberta": FamilyMember(
        "roberta", True, _roberta_head, ("lm_head.",), position_offset=_padding_offset
    ),
    "xlm-roberta": FamilyMember(
        "xlm-roberta", True, _roberta_head, ("lm_head.",), position_offset=_padding_offset
    ),
    "distilbert": FamilyMember(
        "distilbert",
        False,
        _distilbert_head,
        ("vocab_transform.", "vocab_layer_norm.", "vocab_projector."),
    ),
    "electra": FamilyMember(
        "electra", True, _electra_head, ("generator_predictions.", "generator_lm_head.")
    ),
}
"""Every architecture ``export bert --from-hf`` imports; a test checks each has a parity test."""


def family_member(model_type: str, where: str) -> FamilyMember:
    """The member ``model_type`` names, or an error listing the supported ones."""
    member = FAMILY.get(model_type)
    if member is None:
        raise ValueError(
            f"{where}: model_type {model_type!r} is not supported; this importer takes the BERT "
            f"family: {', '.join(sorted(FAMILY))}"
        )
    return member


class HeadAtMasks(nn.Module):
    """A masked LM's head as a module, for tracing into the fill-mask graph."""

    def __init__(self, mlm: PreTrainedModel, member: FamilyMember) -> None:
        super().__init__()
        self.mlm = mlm
        self.member = member

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.member.head(self.mlm, hidden)
