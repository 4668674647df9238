"""The HTTP API's bodies, in OpenAI's shapes, with our options as optional extension fields.

``EmbeddingsRequest`` is OpenAI's ``POST /v1/embeddings`` body (``model``, ``input``,
``encoding_format``, ``dimensions``, ``user``) plus the Embed options named as in the proto
(``pooling``, ``normalize``, ``layers``, ``layer_weights``, ``truncate``, ``skip_unknown``,
``cache_policy``), which the ``openai`` client sends with ``extra_body``. These models are the
OpenAPI document's schemas, the one the fuzz test generates requests from; responses are built
directly as JSON bytes (``service.transport.http.encoding``) in the shapes declared here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.domain import CachePolicy, EmbedQuery, Pooling

NonEmptyText = Annotated[str, Field(min_length=1)]

POOLINGS = {
    "cls": Pooling.CLS,
    "mean": Pooling.MEAN,
    "max": Pooling.MAX,
    "mean_sqrt_len": Pooling.MEAN_SQRT_LEN,
}
CACHE_POLICIES = {
    "use": CachePolicy.USE,
    "bypass": CachePolicy.BYPASS,
    "refresh": CachePolicy.REFRESH,
}


class EmbeddingsRequest(BaseModel):
    """One request for the embedding of each input text."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="a served model's name", examples=["bert"])
    input: NonEmptyText | Annotated[list[NonEmptyText], Field(min_length=1)] = Field(
        description="one text, or a list of texts (none empty)",
        examples=[["the cook peeled a mushy apple in the steamy kitchen ."]],
    )
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: a list of numbers; base64: little-endian float32 bytes"
    )
    dimensions: int | None = Field(
        None, ge=1, description="the first this many values of each vector, normalised again"
    )
    user: str | None = Field(None, description="accepted and ignored")
    version: str = Field("", description="a version number; empty: the newest ready one")
    pooling: Literal["cls", "mean", "max", "mean_sqrt_len"] | None = Field(
        None, description="how token vectors become one; default: the model's"
    )
    normalize: bool | None = Field(
        None, description="L2-normalise each vector; default: the model's"
    )
    prompt_name: str = Field(
        "", description="one of the model's prompts, put before each text; default: its own"
    )
    layers: list[int] = Field(default_factory=list, description="layers to average")
    layer_weights: list[float] = Field(
        default_factory=list, description="a scalar mix over every layer (softmax of these)"
    )
    truncate: bool = Field(False, description="cut texts over the model's length")
    skip_unknown: bool = Field(
        False,
        description="embed a text despite words the model lacks (word2vec: leaves them out; "
        "BERT family: embeds a text made only of unknown tokens instead of refusing it)",
    )
    cache_policy: Literal["use", "bypass", "refresh"] = Field(
        "use", description="use the cache, bypass it, or recompute and overwrite"
    )

    @field_validator("input")
    @classmethod
    def _texts_are_unicode(cls, value: str | list[str]) -> str | list[str]:
        """JSON may escape a lone surrogate, which is no character a model can read."""
        for index, text in enumerate([value] if isinstance(value, str) else value):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(
                    f"text {index} holds a lone surrogate at character {error.start}: send "
                    "valid Unicode"
                ) from None
        return value

    def query(self) -> EmbedQuery:
        """The request as the embedder takes it."""
        texts = (self.input,) if isinstance(self.input, str) else tuple(self.input)
        return EmbedQuery(
            model=self.model,
            version=self.version,
            texts=texts,
            pooling=POOLINGS[self.pooling] if self.pooling else None,
            layers=tuple(self.layers),
            layer_weights=tuple(self.layer_weights),
            normalize=self.normalize,
            truncate=self.truncate,
            skip_unknown=self.skip_unknown,
            cache_policy=CACHE_POLICIES[self.cache_policy],
            prompt_name=self.prompt_name,
            dimensions=self.dimensions or 0,
        )


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int = Field(description="tokens of every input, as the model counts them")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class ModelDetails(BaseModel):
    """What ``GetModel`` says of the model (its fields as in the proto)."""

    model_config = ConfigDict(extra="allow")

    name: str
    ready: bool
    state: str


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="when the described version was loaded (Unix seconds)")
    owned_by: str
    info: ModelDetails


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error shape, for every refusal."""

    error: ErrorDetail


class Health(BaseModel):
    status: Annotated[str, Field(description="serving, or why not")]
