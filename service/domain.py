"""Requests and results as the service sees them, independent of gRPC and of any runtime."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from modelrepo import ModelSpec
from service.errors import InvalidArgument

MAX_TOP_K = 1000
"""The most neighbours or fills per mask one request may ask for."""
MAX_VERSION_DIGITS = 18
"""Longer version strings are refused before ``int()`` (which also refuses "²")."""


class Pooling(enum.Enum):
    CLS = "cls"
    MEAN = "mean"
    MAX = "max"
    MEAN_SQRT_LEN = "mean_sqrt_len"
    NONE = "none"


class CachePolicy(enum.Enum):
    """How one request uses the cache of contextual results."""

    USE = "use"  # read; compute and store what is missing
    BYPASS = "bypass"  # neither read nor write
    REFRESH = "refresh"  # compute everything, then overwrite


@dataclass(frozen=True)
class EmbedOptions:
    """Every option that changes an embedding (so the cache key can be built from it)."""

    pooling: Pooling
    layers: tuple[int, ...] = ()
    layer_weights: tuple[float, ...] = ()
    normalize: bool = False
    truncate: bool = False
    skip_unknown: bool = False
    prompt_name: str = ""
    """A prompt of the model's, put before each text; empty: none."""
    dimensions: int = 0
    """The first this many values of each vector (0: all)."""


@dataclass(frozen=True)
class EmbedQuery:
    """An Embed request as received: options are checked against the model when it is known."""

    model: str
    version: str
    texts: tuple[str, ...]
    pooling: Pooling | None = None
    layers: tuple[int, ...] = ()
    layer_weights: tuple[float, ...] = ()
    normalize: bool | None = None
    """None: the model's default."""
    truncate: bool = False
    skip_unknown: bool = False
    cache_policy: CachePolicy = CachePolicy.USE
    prompt_name: str = ""
    """Empty: the model's default prompt, if it has one."""
    dimensions: int = 0


@dataclass(frozen=True)
class EmbeddingResult:
    """One text's embedding: ``vectors`` is (dim,) when pooled, (num_tokens, dim) for NONE."""

    vectors: np.ndarray
    tokens: tuple[str, ...]
    truncated: bool = False
    cached: bool = False
    unknown_tokens: tuple[str, ...] = ()
    unknown_offsets: tuple[tuple[int, int], ...] = ()
    """Character (start, end) of each unknown token in the text; empty where not reported."""


@dataclass(frozen=True)
class MaskFill:
    token: str
    score: float
    token_id: int
    sequence: str


@dataclass(frozen=True)
class FillMaskQuery:
    model: str
    version: str
    texts: tuple[str, ...]
    top_k: int
    cache_policy: CachePolicy = CachePolicy.USE
    truncate: bool = False
    """Cut a text over the model's maximum to a window around its masks."""


@dataclass(frozen=True)
class FillMaskResult:
    """One text's fills: the top-k predictions at each of its masks, in order."""

    masks: tuple[tuple[MaskFill, ...], ...]
    cached: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class TokenizedText:
    tokens: tuple[str, ...]
    ids: tuple[int, ...] = ()
    offsets: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Neighbor:
    word: str
    score: float


@dataclass(frozen=True)
class MostSimilarQuery:
    model: str
    version: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    top_k: int


@dataclass
class Timing:
    """Where a request's time went, in seconds."""

    queue_s: float = 0.0
    tokenization_s: float = 0.0
    inference_s: float = 0.0
    total_s: float = 0.0
    postprocess_s: float = 0.0

    def merged(self, later: Timing) -> Timing:
        """This request's time with a later part's: the longest queue wait, the rest added."""
        return Timing(
            queue_s=max(self.queue_s, later.queue_s),
            tokenization_s=self.tokenization_s + later.tokenization_s,
            inference_s=self.inference_s + later.inference_s,
            postprocess_s=self.postprocess_s + later.postprocess_s,
        )


def parse_version(version: str) -> int | None:
    """A request's version: None when empty (the newest), else its number; INVALID_ARGUMENT
    for anything but a few ASCII digits."""
    if not version:
        return None
    if not (version.isascii() and version.isdigit()) or len(version) > MAX_VERSION_DIGITS:
        raise InvalidArgument(f"version must be a number or empty (newest), got {version[:40]!r}")
    return int(version)


def checked_top_k(top_k: int, default: int) -> int:
    """A request's ``top_k``: ``default`` when 0, INVALID_ARGUMENT above ``MAX_TOP_K``."""
    if top_k > MAX_TOP_K:
        raise InvalidArgument(f"top_k is {top_k}; at most {MAX_TOP_K} is allowed")
    return top_k or default


@dataclass
class EmbedOutcome:
    results: list[EmbeddingResult]
    dim: int
    model: str
    version: int
    timing: Timing = field(default_factory=Timing)


@dataclass
class FillMaskOutcome:
    results: list[FillMaskResult]
    model: str
    version: int
    timing: Timing = field(default_factory=Timing)


@dataclass
class TokenizeOutcome:
    results: list[TokenizedText]
    model: str
    version: int


@dataclass
class MostSimilarOutcome:
    neighbors: list[Neighbor]
    model: str
    version: int


@dataclass(frozen=True)
class EmbedSupport:
    """What one architecture's embeddings refuse, and why, as the caller is told it.

    Layers come from the model's spec (0 to ``num_layers``); this says which poolings the
    architecture cannot compute and whether it can mix layers. ``{name}`` in a message is the
    model's name.
    """

    refused_poolings: Mapping[Pooling, str] = field(default_factory=dict)
    refused_layer_weights: str = ""  # why layer_weights is refused; empty when it is accepted


def vector_dim(spec: ModelSpec, pooling: Pooling) -> int:
    """The length of the model's vectors: token vectors (no pooling) are the encoder's, pooled
    ones go through its Dense layers, if it has any."""
    return spec.hidden_size if pooling is Pooling.NONE else spec.output_dim


def served_dim(spec: ModelSpec, options: EmbedOptions) -> int:
    """The length of each vector answered with ``options``: cut to ``dimensions`` if asked."""
    return options.dimensions or vector_dim(spec, options.pooling)


def resolve_embed_options(
    spec: ModelSpec, query: EmbedQuery, support: EmbedSupport
) -> EmbedOptions:
    """Check a request's options against the model and what its architecture ``support``s
    (declared with its runtime), and fill in its defaults.

    This is the only check of pooling, layers and layer weights: the runtimes trust the
    options they are given.
    """
    layers, layer_weights = query.layers, query.layer_weights
    top = spec.num_layers
    if layers and layer_weights:
        raise InvalidArgument(
            "give either layers (layers to average) or layer_weights (a scalar mix over all "
            "layers), not both"
        )
    for layer in layers:
        if not 0 <= layer <= top:
            raise InvalidArgument(
                f"layer {layer} does not exist in {spec.name}: choose layers from 0 (embeddings) "
                f"to {top}"
            )
    if layer_weights:
        if len(layer_weights) != top + 1:
            raise InvalidArgument(
                f"layer_weights needs {top + 1} weights for {spec.name} (layers 0..{top}), "
                f"got {len(layer_weights)}"
            )
        if not all(math.isfinite(weight) for weight in layer_weights):
            raise InvalidArgument("layer_weights must be finite numbers")
    pooling = query.pooling or Pooling(spec.default_pooling)
    refusal = support.refused_poolings.get(pooling)
    if refusal is not None:
        raise InvalidArgument(refusal.format(name=spec.name))
    if layer_weights and support.refused_layer_weights:
        raise InvalidArgument(support.refused_layer_weights.format(name=spec.name))
    if layer_weights:
        chosen: tuple[int, ...] = ()
    else:
        chosen = tuple(dict.fromkeys(layers)) if layers else spec.default_layers
    head = spec.sentence
    prompt_name = query.prompt_name or head.default_prompt_name or ""
    if prompt_name and prompt_name not in head.prompts:
        offered = sorted(head.prompts) or "none"
        raise InvalidArgument(
            f"prompt_name {prompt_name[:40]!r} is not a prompt of {spec.name}; its prompts: "
            f"{offered}"
        )
    dim = vector_dim(spec, pooling)
    if query.dimensions > dim:
        raise InvalidArgument(
            f"dimensions is {query.dimensions}, but {spec.name} answers {dim} values; ask for "
            f"at most {dim} (0: all)"
        )
    return EmbedOptions(
        pooling=pooling,
        layers=chosen,
        layer_weights=layer_weights,
        normalize=head.normalize if query.normalize is None else query.normalize,
        truncate=query.truncate,
        skip_unknown=query.skip_unknown,
        prompt_name=prompt_name,
        dimensions=query.dimensions,
    )
