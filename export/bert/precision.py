"""Reduced-precision forms of a validated fp32 BERT export: int8 for CPU, fp16 for CUDA.

A reduced graph cannot meet the fp32 export's 1e-4 parity with PyTorch, so it is checked
against the fp32 graph it was made from, on held-out texts and through the served runtime
itself (tokenization, padding, layer choice and mean pooling of ``BertRuntime``): the cosine
between the two graphs' mean-pooled embeddings, and between their logits at each mask of the
fill-mask graph, whose top-1 token agreement is recorded too. The smallest cosine must reach
the threshold, or nothing is published.

* int8: ONNX Runtime's dynamic quantization (int8 weights, activations quantized per batch),
  which runs on the CPU provider; about 2.5x the fp32 throughput of a bert-base on CPU.
* fp16: every float tensor in half precision, inputs and outputs kept as the spec declares
  them (int64 ids in, float32 states out), so the server feeds and reads it unchanged. It is
  meant for CUDA; the check runs it on the CPU provider, which is slower but computes the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from modelrepo import ModelSpec
from modelrepo.validation import PrecisionCheck
from service.runtime import EmbedOptions, Pooling
from service.runtime.bert import BertRuntime
from service.runtime.session import CPU_FP32

ReducedPrecision = Literal["fp16", "int8"]
COSINE_THRESHOLD = 0.99
# held-out texts compared by default: fp16 runs slowly on the CPU provider
DEFAULT_TEXTS: dict[ReducedPrecision, int] = {"int8": 300, "fp16": 64}
BATCH = 32


@dataclass(frozen=True)
class PrecisionPlan:
    """Publish ``precision`` graphs made from the fp32 export, checked on ``texts``."""

    precision: ReducedPrecision
    texts: tuple[str, ...]
    threshold: float = COSINE_THRESHOLD

    def __post_init__(self) -> None:
        if not self.texts:
            raise ValueError("a reduced-precision export needs held-out texts to check it on")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"cosine threshold {self.threshold} is outside (0, 1]")


class PrecisionCheckFailed(Exception):
    """A reduced-precision graph's answers drifted too far from the fp32 graph's."""


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer logs a pre-processing hint on the root logger for every graph."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)


def convert_graph(source: Path, target: Path, precision: ReducedPrecision) -> None:
    """Write the ``precision`` form of the fp32 graph at ``source`` to ``target``."""
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet_quantizer():
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QInt8,
                # an ORT-optimized graph has fused ops whose outputs carry no type information
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        return
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(half, str(target))


def cosines(reference: np.ndarray, reduced: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (rows, dim) arrays, in float64."""
    left = reference.astype(np.float64)
    right = reduced.astype(np.float64)
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    result: np.ndarray = (left * right).sum(axis=1) / np.maximum(norms, 1e-30)
    return result


def mean_pooled(runtime: BertRuntime, texts: Sequence[str]) -> np.ndarray:
    """The served mean-pooled embedding of each text at the model's default layers (a text
    longer than the model takes is truncated, as a client may ask)."""
    options = EmbedOptions(Pooling.MEAN, layers=runtime.spec.default_layers, truncate=True)
    vectors = []
    for start in range(0, len(texts), BATCH):
        items = runtime.prepare_embed(texts[start : start + BATCH], options)
        vectors += [pooled.result.vectors for pooled in runtime.embed_batch(items)]
    return np.stack(vectors)


def mask_logits(runtime: BertRuntime, texts: Sequence[str]) -> np.ndarray:
    """The served fill-mask logits at every mask of the texts, in order: (masks, vocab)."""
    logits = []
    for start in range(0, len(texts), BATCH):
        items = runtime.prepare_fill_mask(texts[start : start + BATCH], top_k=1)
        logits += runtime.run_fill_mask(items)
    return np.concatenate(logits)


def masked(runtime: BertRuntime, texts: Sequence[str]) -> list[str]:
    """Each text that fits the model with its middle word replaced by the mask token."""
    result = []
    for text in texts:
        words = text.split()
        words[len(words) // 2] = runtime.mask_token
        result.append(" ".join(words))
    limit = runtime.spec.max_sequence_length
    return [
        text
        for text, t in zip(result, runtime.tokenize(result), strict=True)
        if len(t.ids) <= limit
    ]


def _check(
    precision: ReducedPrecision,
    output: str,
    similarity: np.ndarray,
    threshold: float,
    top1_agreement: float | None = None,
) -> PrecisionCheck:
    smallest = float(similarity.min())
    return PrecisionCheck(
        precision=precision,
        output=output,
        texts=len(similarity),
        threshold=threshold,
        min_cosine=smallest,
        mean_cosine=float(similarity.mean()),
        passed=smallest >= threshold,
        top1_agreement=top1_agreement,
    )


def compare_precision(
    reference: BertRuntime, reduced: BertRuntime, plan: PrecisionPlan
) -> dict[str, PrecisionCheck]:
    """Each graph role's check of ``reduced`` against ``reference`` on the plan's texts."""
    texts = list(plan.texts)
    layers = "+".join(reference.layer_outputs[layer] for layer in reference.spec.default_layers)
    checks = {
        "encoder": _check(
            plan.precision,
            f"mean-pooled {layers}",
            cosines(mean_pooled(reference, texts), mean_pooled(reduced, texts)),
            plan.threshold,
        )
    }
    if reference.fill_mask is not None:
        masked_texts = masked(reference, texts)
        expected, actual = mask_logits(reference, masked_texts), mask_logits(reduced, masked_texts)
        agreement = float((expected.argmax(axis=1) == actual.argmax(axis=1)).mean())
        checks["fill_mask"] = _check(
            plan.precision,
            "logits at the middle word, masked",
            cosines(expected, actual),
            plan.threshold,
            top1_agreement=agreement,
        )
    return checks


def check_precision(
    reference_dir: Path, reference_spec: ModelSpec, reduced_dir: Path, plan: PrecisionPlan
) -> dict[str, PrecisionCheck]:
    """Open both versions as the server does, compare them, and raise if any check fails."""
    reduced_spec = reference_spec.model_copy(update={"precision": plan.precision})
    checks = compare_precision(
        BertRuntime(reference_dir, reference_spec, CPU_FP32),
        BertRuntime(reduced_dir, reduced_spec, CPU_FP32),
        plan,
    )
    failed = [
        f"{role}: {check.output} has min cosine {check.min_cosine:.4f} (mean "
        f"{check.mean_cosine:.4f}) to fp32 < {check.threshold:g} over {check.texts} held-out texts"
        for role, check in checks.items()
        if not check.passed
    ]
    if failed:
        raise PrecisionCheckFailed(
            f"the {plan.precision} graphs drift too far from fp32, not published: "
            + "; ".join(failed)
        )
    return checks
