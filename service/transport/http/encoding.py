"""Response bodies of the HTTP API as JSON bytes, written by orjson straight from numpy.

Building the response through pydantic and the standard ``json`` module costs tens of µs per
vector; orjson writes a float32 array's shortest decimal form directly, and base64 is the
vector's little-endian bytes. The shapes are those ``schemas`` declares (``EmbeddingsResponse``,
``ModelList``, ``ModelObject``).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
from google.protobuf import json_format

from service.domain import EmbedOutcome
from service.registry.registry import ModelView
from service.transport import codec

OWNED_BY = "embedding-service"
LITTLE_ENDIAN_FLOAT32 = np.dtype("<f4")


def embeddings(outcome: EmbedOutcome, encoding_format: str) -> bytes:
    """An ``EmbeddingsResponse``: one vector per input, in order, and the tokens counted."""
    data = []
    for index, result in enumerate(outcome.results):
        vector: Any = result.vectors
        if encoding_format == "base64":
            raw = vector.astype(LITTLE_ENDIAN_FLOAT32, copy=False).tobytes()
            vector = base64.b64encode(raw).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(len(result.tokens) for result in outcome.results)
    body = {
        "object": "list",
        "data": data,
        "model": outcome.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def model_object(view: ModelView) -> dict[str, Any]:
    """A ``ModelObject``: OpenAI's fields, and what ``GetModel`` answers under ``info``."""
    info = json_format.MessageToDict(
        codec.model_info(view),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return {
        "id": view.name,
        "object": "model",
        "created": int(view.loaded_at),
        "owned_by": OWNED_BY,
        "info": info,
    }


def model_list(views: list[ModelView]) -> bytes:
    """A ``ModelList`` of every model the server knows, ready or not, each once: a model with
    several served versions by its newest (``info.versions`` lists them all), as a request
    without a version gets it."""
    newest: dict[str, ModelView] = {}
    for view in views:
        known = newest.get(view.name)
        if known is None or _version(view) > _version(known):
            newest[view.name] = view
    return orjson.dumps({"object": "list", "data": [model_object(v) for v in newest.values()]})


def _version(view: ModelView) -> int:
    return view.runtime.spec.version if view.runtime is not None else -1
