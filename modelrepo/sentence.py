"""How a model's sentence embedding is made beyond pooling, as its authors' sentence-transformers
configuration says, recorded in ``spec.json`` at import: the normalisation, Dense layers after
pooling, named prompts, whether prompt tokens are pooled, and the similarity function the
vectors are meant to be compared with. (Lower-casing, where the folder asks for it, is a step
of the served ``tokenizer.json``.)

A model without such a configuration has the empty head: plain pooled vectors, no prompt.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Activation = Literal["identity", "tanh", "relu", "gelu", "sigmoid"]
Similarity = Literal["cosine", "dot", "euclidean", "manhattan"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DenseLayer(_Frozen):
    """One Dense module, applied to the pooled vector: ``activation(x @ weight.T + bias)``."""

    file: str = Field(min_length=1, description="an .npz holding `weight` (out x in) and `bias`")
    in_features: int = Field(ge=1)
    out_features: int = Field(ge=1)
    activation: Activation


class SentenceHead(_Frozen):
    """What turns pooled token vectors into *the* embedding, by default."""

    normalize: bool = Field(False, description="L2-normalise, unless a request says otherwise")
    dense: tuple[DenseLayer, ...] = ()
    prompts: dict[str, str] = Field(default_factory=dict)
    default_prompt_name: str | None = None
    include_prompt: bool = Field(
        True, description="the prompt's tokens count in pooling (false: left out, as trained)"
    )
    similarity: Similarity = Field(
        "cosine", description="what the authors score two vectors with (similarity_fn_name)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SentenceHead:
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(
                f"default prompt {self.default_prompt_name!r} is not among the prompts "
                f"{sorted(self.prompts)}"
            )
        for before, after in zip(self.dense, self.dense[1:], strict=False):
            if before.out_features != after.in_features:
                raise ValueError(
                    f"dense layers do not chain: {before.out_features} outputs into "
                    f"{after.in_features} inputs"
                )
        return self

    @property
    def files(self) -> tuple[str, ...]:
        """The Dense layers' weight files, artifacts of the version like its graphs."""
        return tuple(layer.file for layer in self.dense)

    def output_dim(self, hidden_size: int) -> int:
        """The dimension of the served vectors: the last Dense layer's, else the encoder's."""
        return self.dense[-1].out_features if self.dense else hidden_size
