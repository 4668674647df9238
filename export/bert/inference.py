"""Run an exported BERT version with ONNX Runtime, for evaluation of what is actually served."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from export.validate import cpu_session
from modelrepo import load_checked


class OnnxBert:
    """Word-aligned contextual vectors and fill-mask logits from a repository version."""

    def __init__(self, directory: Path) -> None:
        self.spec = load_checked(directory)
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.encoder = cpu_session(directory / self.spec.graph("encoder").file)
        self.fill_mask = (
            cpu_session(directory / self.spec.graph("fill_mask").file)
            if self.spec.supports("fill_mask")
            else None
        )
        self.layer_outputs = [tensor.name for tensor in self.spec.graph("encoder").outputs]
        self.pad_id = self.spec.special_token_ids["pad"]
        self.mask_id = self.spec.special_token_ids["mask"]

    def _batch(
        self, words: Sequence[Sequence[str]]
    ) -> tuple[dict[str, np.ndarray], list[list[int | None]]]:
        encodings = self.tokenizer.encode_batch([list(w) for w in words], is_pretokenized=True)
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return arrays, [list(encoding.word_ids) for encoding in encodings]

    def word_vectors(
        self, sentences: Sequence[Sequence[str]], positions: Sequence[int], layer: int | None = None
    ) -> np.ndarray:
        """The vector of word ``positions[i]`` of sentence i: mean of its word pieces."""
        layer = self.spec.num_layers if layer is None else layer
        arrays, word_ids = self._batch(sentences)
        (states,) = self.encoder.run([self.layer_outputs[layer]], arrays)
        vectors = []
        for row, position in enumerate(positions):
            pieces = [i for i, word in enumerate(word_ids[row]) if word == position]
            vectors.append(states[row, pieces].mean(axis=0))
        return np.stack(vectors)

    def mask_logits(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """Logits at the single mask token of each sentence: (sentences, vocab)."""
        if self.fill_mask is None:
            raise ValueError(f"{self.spec.name} has no masked-LM head")
        arrays, _ = self._batch(sentences)
        rows, columns = np.nonzero(arrays["input_ids"] == self.mask_id)
        if len(rows) != len(sentences):
            raise ValueError("every sentence needs exactly one mask token")
        arrays["mask_positions"] = np.stack([rows, columns], axis=1).astype(np.int64)
        (logits,) = self.fill_mask.run(["logits"], arrays)
        return np.asarray(logits)

    def single_token_id(self, word: str) -> int | None:
        """The id of ``word`` if it is one word piece, else None."""
        ids = self.tokenizer.encode([word], is_pretokenized=True, add_special_tokens=False).ids
        return ids[0] if len(ids) == 1 else None
