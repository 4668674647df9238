"""The request messages both clients send, built in one place from plain Python arguments,
and the vectors read back from an ``EmbedResponse``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
from grpc_health.v1 import health_pb2

from proto.embedding.v1 import embedding_pb2 as pb

POOLINGS = {
    "default": pb.POOLING_UNSPECIFIED,
    "cls": pb.POOLING_CLS,
    "mean": pb.POOLING_MEAN,
    "max": pb.POOLING_MAX,
    "mean_sqrt_len": pb.POOLING_MEAN_SQRT_LEN,
    "none": pb.POOLING_NONE,
}
NORMALIZATIONS = {
    None: pb.NORMALIZATION_UNSPECIFIED,
    True: pb.NORMALIZATION_ON,
    False: pb.NORMALIZATION_OFF,
}
"""``normalize``: None leaves it to the model, True or False says so."""
CACHE_POLICIES = {
    "use": pb.CACHE_POLICY_UNSPECIFIED,
    "bypass": pb.CACHE_POLICY_BYPASS,
    "refresh": pb.CACHE_POLICY_REFRESH,
}
ENCODINGS = {
    "float": pb.VECTOR_ENCODING_UNSPECIFIED,
    "float32": pb.VECTOR_ENCODING_FLOAT32,
    "float16": pb.VECTOR_ENCODING_FLOAT16,
}
"""How a response carries each vector: ``repeated float`` or little-endian raw bytes."""
_RAW_DTYPES = {
    pb.VECTOR_ENCODING_UNSPECIFIED: None,
    pb.VECTOR_ENCODING_FLOAT32: np.dtype("<f4"),
    pb.VECTOR_ENCODING_FLOAT16: np.dtype("<f2"),
}


def dimensions_option(text: str) -> int:
    """A command line's ``--dimensions``: a count of values, 0 for all of them."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count of values (0: all), got {text!r}")
    return value


def embed_request(
    texts: Sequence[str],
    model: str,
    version: str = "",
    pooling: str = "default",
    layers: Sequence[int] = (),
    layer_weights: Sequence[float] = (),
    normalize: bool | None = None,
    truncate: bool = False,
    skip_unknown: bool = False,
    cache_policy: str = "use",
    encoding: str = "float",
    prompt_name: str = "",
    dimensions: int = 0,
) -> pb.EmbedRequest:
    """``encoding`` float32 or float16 asks for raw little-endian bytes (read them with
    ``vectors``): no per-float work on either side; float16 halves the bytes again.
    ``normalize`` None leaves normalisation to the model's default; ``prompt_name`` names one
    of its prompts (empty: its default); ``dimensions`` keeps the first so many values."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(ENCODINGS)}, got {encoding!r}")
    return pb.EmbedRequest(
        model=model,
        version=version,
        texts=list(texts),
        pooling=POOLINGS[pooling],
        layers=list(layers),
        layer_weights=list(layer_weights),
        normalization=NORMALIZATIONS[normalize],
        truncate=truncate,
        skip_unknown=skip_unknown,
        cache_policy=cache_policy_value(cache_policy),
        encoding=ENCODINGS[encoding],
        prompt_name=prompt_name,
        dimensions=dimensions,
    )


def cache_policy_value(name: str) -> pb.CachePolicy:
    if name not in CACHE_POLICIES:
        raise ValueError(f"cache_policy must be one of {sorted(CACHE_POLICIES)}, got {name!r}")
    return CACHE_POLICIES[name]


def fill_mask_request(
    texts: Sequence[str],
    model: str,
    top_k: int = 5,
    version: str = "",
    cache_policy: str = "use",
    *,
    truncate: bool = False,
) -> pb.FillMaskRequest:
    """``truncate`` cuts a text over the model's maximum to a window around its masks."""
    return pb.FillMaskRequest(
        model=model,
        version=version,
        texts=list(texts),
        top_k=top_k,
        cache_policy=cache_policy_value(cache_policy),
        truncate=truncate,
    )


def most_similar_request(
    model: str,
    positive: Sequence[str],
    negative: Sequence[str] = (),
    top_k: int = 10,
    version: str = "",
) -> pb.MostSimilarRequest:
    return pb.MostSimilarRequest(
        model=model,
        version=version,
        positive=list(positive),
        negative=list(negative),
        top_k=top_k,
    )


def tokenize_request(texts: Sequence[str], model: str, version: str = "") -> pb.TokenizeRequest:
    return pb.TokenizeRequest(model=model, version=version, texts=list(texts))


def get_model_request(model: str, version: str = "") -> pb.GetModelRequest:
    return pb.GetModelRequest(model=model, version=version)


def health_request(service: str = "") -> health_pb2.HealthCheckRequest:
    return health_pb2.HealthCheckRequest(service=service)


def health_status(response: health_pb2.HealthCheckResponse) -> str:
    """SERVING, NOT_SERVING, ... as a name."""
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def vectors(response: pb.EmbedResponse) -> list[np.ndarray]:
    """Each embedding as a float32 array: (dim,) when pooled, (num_tokens, dim) for
    POOLING_NONE, whichever encoding the response states: raw bytes are read with
    ``np.frombuffer`` (no per-float work), a float16 buffer widened to float32."""
    if response.encoding not in _RAW_DTYPES:
        raise ValueError(f"encoding {response.encoding} of the response is unknown to this client")
    raw = _RAW_DTYPES[response.encoding]
    result = []
    for embedding in response.embeddings:
        if raw is None:
            values = np.asarray(embedding.values, dtype=np.float32)
        else:
            values = np.frombuffer(embedding.raw_values, dtype=raw).astype(np.float32)
        if values.size != response.dim:
            values = values.reshape(embedding.num_tokens, response.dim)
        result.append(values)
    return result
