"""Cached values: a compact binary with a checked header, one per text and operation.

Layout (little-endian)::

    header  magic "EMBC" | format u8 | kind u8 | flags u8 | ndim u8 |
            rows u32 | cols u32 | strings u32 | crc32 u32
    body    rows x cols float32 | (fill-mask) rows x cols int32 token ids | strings (UTF-8 JSON)

``kind`` is 1 for an embedding (``ndim`` 1: a pooled vector of ``cols``; 2: ``rows`` token
vectors; as strings its tokens, unknown tokens and their flattened offsets) and 2 for fill-mask
(``rows`` masks x ``cols`` predictions: scores, token ids, and the tokens and filled sequences
as strings); bit 0 of ``flags`` says either was truncated. ``crc32`` covers the body. A value
whose header, lengths or checksum do not add up raises ``CorruptValue``; the caller counts it,
computes the result, and overwrites the entry.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np

from service.domain import EmbeddingResult, FillMaskResult, MaskFill

MAGIC = b"EMBC"
FORMAT = 1
KIND_EMBEDDING = 1
KIND_FILL_MASK = 2
_TRUNCATED = 1
_HEADER = struct.Struct("<4sBBBBIIII")


class CorruptValue(ValueError):
    """Bytes read from a cache tier that are not a value this format wrote."""


def _pack(kind: int, flags: int, ndim: int, arrays: list[np.ndarray], strings: Any) -> bytes:
    rows, cols = (1, arrays[0].shape[0]) if ndim == 1 else arrays[0].shape
    text = json.dumps(strings, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )
    body = b"".join(array.tobytes() for array in arrays) + text
    header = _HEADER.pack(MAGIC, FORMAT, kind, flags, ndim, rows, cols, len(text), zlib.crc32(body))
    return header + body


def _unpack(value: bytes, kind: int, arrays: int) -> tuple[int, int, list[np.ndarray], Any]:
    """(flags, ndim, arrays, strings) of a value of ``kind`` with ``arrays`` 4-byte arrays."""
    if len(value) < _HEADER.size:
        raise CorruptValue(f"{len(value)} bytes is shorter than the header")
    magic, fmt, found, flags, ndim, rows, cols, strings, crc = _HEADER.unpack_from(value)
    if magic != MAGIC or fmt != FORMAT or found != kind or ndim not in (1, 2):
        raise CorruptValue(f"header {magic!r} format {fmt} kind {found} ndim {ndim}")
    if ndim == 1 and rows != 1:
        raise CorruptValue(f"a 1-d value with {rows} rows")
    numbers = rows * cols * 4
    if len(value) != _HEADER.size + arrays * numbers + strings:
        raise CorruptValue(f"{len(value)} bytes where the header says otherwise")
    body = memoryview(value)[_HEADER.size :]
    if zlib.crc32(body) != crc:
        raise CorruptValue("checksum mismatch")
    shape = (cols,) if ndim == 1 else (rows, cols)
    dtypes = (np.float32, np.int32)
    loaded = [
        np.frombuffer(body[i * numbers : (i + 1) * numbers], dtype=dtypes[i]).reshape(shape)
        for i in range(arrays)
    ]
    try:
        decoded = json.loads(bytes(body[arrays * numbers :]).decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptValue(f"strings: {error}") from error
    return flags, ndim, loaded, decoded


def encode_embedding(result: EmbeddingResult) -> bytes:
    vectors = np.ascontiguousarray(result.vectors, dtype=np.float32)
    if vectors.ndim not in (1, 2):
        raise ValueError(f"an embedding has 1 or 2 dimensions, got {vectors.shape}")
    flags = _TRUNCATED if result.truncated else 0
    offsets = [bound for span in result.unknown_offsets for bound in span]
    strings = [list(result.tokens), list(result.unknown_tokens), offsets]
    return _pack(KIND_EMBEDDING, flags, vectors.ndim, [vectors], strings)


def decode_embedding(value: bytes) -> EmbeddingResult:
    """The embedding stored in ``value``, marked ``cached``; ``CorruptValue`` if it is not one."""
    flags, _, (vectors,), strings = _unpack(value, KIND_EMBEDDING, 1)
    try:
        tokens, unknown, offsets = strings
        bounds = [int(bound) for bound in offsets]
        result = EmbeddingResult(
            vectors=vectors,
            tokens=tuple(str(token) for token in tokens),
            truncated=bool(flags & _TRUNCATED),
            cached=True,
            unknown_tokens=tuple(str(token) for token in unknown),
            unknown_offsets=tuple(zip(bounds[::2], bounds[1::2], strict=True)),
        )
    except (TypeError, ValueError) as error:
        raise CorruptValue(f"strings: {error}") from error
    if vectors.ndim == 2 and len(vectors) != len(result.tokens):
        raise CorruptValue(f"{len(vectors)} token vectors for {len(result.tokens)} tokens")
    return result


def encode_fill_mask(result: FillMaskResult) -> bytes:
    width = {len(mask) for mask in result.masks}
    if len(width) != 1:
        raise ValueError("every mask of a fill-mask result has the same number of predictions")
    scores = np.asarray([[fill.score for fill in mask] for mask in result.masks], np.float32)
    ids = np.asarray([[fill.token_id for fill in mask] for mask in result.masks], np.int32)
    strings = [[[fill.token, fill.sequence] for fill in mask] for mask in result.masks]
    flags = _TRUNCATED if result.truncated else 0
    return _pack(KIND_FILL_MASK, flags, 2, [scores, ids], strings)


def decode_fill_mask(value: bytes) -> FillMaskResult:
    """The fills stored in ``value``, marked ``cached``; ``CorruptValue`` if it is not one."""
    flags, _, (scores, ids), strings = _unpack(value, KIND_FILL_MASK, 2)
    try:
        masks = tuple(
            tuple(
                MaskFill(
                    token=str(token),
                    score=float(score),
                    token_id=int(token_id),
                    sequence=str(sequence),
                )
                for (token, sequence), score, token_id in zip(
                    mask_strings, mask_scores, mask_ids, strict=True
                )
            )
            for mask_strings, mask_scores, mask_ids in zip(strings, scores, ids, strict=True)
        )
    except (TypeError, ValueError) as error:
        raise CorruptValue(f"strings: {error}") from error
    return FillMaskResult(masks=masks, cached=True, truncated=bool(flags & _TRUNCATED))
