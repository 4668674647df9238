"""The BERT family behind the runtime protocol (BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA):
the checkpoint's own tokenizer (WordPiece, byte-level BPE or Unigram) through ``tokenizers``,
encoder and fill-mask graphs fed the inputs they declare (DistilBERT has no token types).

A model imported with a sentence-transformers configuration is served as its authors'
``encode`` computes it (lower-casing, where it asks for it, is in its tokenizer): a named
prompt put before each text (its tokens left out of pooling where it was trained so), the
pooled vector through its Dense layers, normalised by default where it ends in Normalize
(``spec.sentence``).

Text the vocabulary lacks becomes the unknown token, and a text of nothing else would get the
same vector as any other of its length: what became it is reported with its offsets, and such a
text is refused unless ``skip_unknown`` asks for it anyway (FillMask always refuses it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
from tokenizers import Encoding, Tokenizer, models

from modelrepo import ModelSpec
from service.domain import EmbedOptions, EmbedSupport, MaskFill, TokenizedText
from service.errors import InvalidArgument
from service.runtime.base import (
    EmbedItem,
    FillMaskItem,
    PooledEmbedding,
    layers_to_fetch,
    pool_batch,
    warm_up_embeddings,
)
from service.runtime.dense import DenseHead
from service.runtime.session import GraphSession, SessionOptions
from service.runtime.words import quoted, require_words

CONTINUATION = "##"  # WordPiece: a piece that continues the word before it
WORD_START = ("Ġ", "▁")  # byte-level BPE and SentencePiece: a piece that starts a word
MAX_CHARACTERS_CHECKED = 50  # distinct characters of a refused text looked up one by one


@dataclass(frozen=True)
class _Unknown:
    """What of one text became the model's unknown token, and where it lies in the text."""

    pieces: tuple[str, ...] = ()
    offsets: tuple[tuple[int, int], ...] = ()
    known: bool = True
    """Some other token of the text is in the vocabulary."""

    @property
    def only(self) -> bool:
        """Every token that carries the text's characters is unknown: the model sees nothing
        of the text (a script it was not trained on), so its answer would mean nothing."""
        return bool(self.pieces) and not self.known


NO_UNKNOWN = _Unknown()


class BertRuntime:
    """A BERT model version: embeddings from any layer, and fill-mask if it has an MLM head."""

    embed_support = EmbedSupport()  # every pooling, layer choice and layer mix
    batched = True

    def __init__(self, directory: Path, spec: ModelSpec, options: SessionOptions) -> None:
        self.spec = spec
        label = f"{spec.name}/{spec.version}"
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        encoder = spec.graph("encoder")
        self.encoder = GraphSession(directory / encoder.file, encoder, options, f"{label} encoder")
        # the encoder declares one output per layer, in layer order (0 = embeddings)
        self.layer_outputs = [tensor.name for tensor in encoder.outputs]
        self.fill_mask: GraphSession | None = None
        if spec.supports("fill_mask"):
            graph = spec.graph("fill_mask")
            self.fill_mask = GraphSession(
                directory / graph.file, graph, options, f"{label} fill_mask"
            )
        self.device = self.encoder.device
        self.graph_roles = {"embed": "encoder"}
        if self.fill_mask is not None:
            self.graph_roles["fill_mask"] = "fill_mask"
        ids = spec.special_token_ids
        self.pad_id, self.sep_id, self.mask_id = ids["pad"], ids["sep"], ids["mask"]
        self.mask_token = spec.special_tokens["mask"]
        self.unk_id = ids.get("unk")
        self.unk_token = spec.special_tokens.get("unk", "")
        self.word_piece = isinstance(self.tokenizer.model, models.WordPiece)
        self.special_ids = {
            token_id
            for token_id, token in self.tokenizer.get_added_tokens_decoder().items()
            if token.special
        } | set(ids.values())
        self.inputs = {tensor.name for tensor in encoder.inputs}
        """What the graphs take: input_ids and attention_mask, token_type_ids where declared."""
        self.head = DenseHead(directory, spec.sentence.dense) if spec.sentence.dense else None
        self.prompt_lengths = {
            name: self._prompt_length(prompt) for name, prompt in spec.sentence.prompts.items()
        }
        """Per prompt, the tokens its text takes at the start (the first special token
        included): those left out of pooling when the model pools without its prompt."""

    @property
    def dim(self) -> int:
        return self.spec.output_dim

    def _prompt_length(self, prompt: str) -> int:
        """The prompt's tokens as sentence-transformers counts them: the prompt tokenized
        alone, less its closing special token; an empty prompt is no prompt."""
        if not prompt:
            return 0
        ids = self.tokenizer.encode(prompt).ids
        special = set(self.spec.special_token_ids.values())
        return len(ids) - 1 if ids and ids[-1] in special else len(ids)

    # -- tokenization ---------------------------------------------------------------------
    def _encode(self, texts: Sequence[str], prompt: str = "") -> list[Encoding]:
        require_words(texts)
        return self.tokenizer.encode_batch([prompt + text for text in texts])

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]:
        return [
            TokenizedText(self._shown(encoding), tuple(encoding.ids), tuple(encoding.offsets))
            for encoding in self._encode(texts)
        ]

    def _shown(self, encoding: Encoding) -> tuple[str, ...]:
        """The encoding's tokens, with the unknown token where the vocabulary lacked the text
        (a Unigram tokenizer names the text's piece itself; the offsets still point at it)."""
        ids, tokens = encoding.ids, encoding.tokens
        if self.unk_id is None or self.unk_id not in ids:
            return tuple(tokens)
        unk, unk_id = self.unk_token, self.unk_id
        return tuple(unk if i == unk_id else token for token, i in zip(tokens, ids, strict=True))

    def _unknown(
        self, text: str, encoding: Encoding, positions: Iterable[int], skip: int = 0
    ) -> _Unknown:
        """The pieces of ``text`` that became the unknown token among the encoding's tokens at
        ``positions``, with their offsets in ``text``; ``skip`` characters of prompt came
        before it (their tokens are not the text's). A bare word-start mark (``▁``) carries no
        character of the text, so it is neither known nor unknown."""
        ids = encoding.ids
        if self.unk_id is None or self.unk_id not in ids:
            return NO_UNKNOWN
        tokens, spans = encoding.tokens, encoding.offsets
        pieces, offsets, known = [], [], False
        for position in positions:
            token_id, (start, end) = ids[position], spans[position]
            if start < skip:
                continue
            if token_id == self.unk_id:
                pieces.append(text[start - skip : end - skip])
                offsets.append((start - skip, end - skip))
            elif token_id not in self.special_ids and tokens[position] not in WORD_START:
                known = True
        return _Unknown(tuple(pieces), tuple(offsets), known)

    def _unknown_characters(self, pieces: Sequence[str]) -> list[str]:
        """The characters of ``pieces`` the vocabulary lacks even alone (a script the model
        was not trained on); none when only whole words failed (a word too long to split)."""
        characters = dict.fromkeys(char for piece in pieces for char in piece if not char.isspace())
        return [
            char
            for char in list(characters)[:MAX_CHARACTERS_CHECKED]
            if self.unk_id in self.tokenizer.encode(char, add_special_tokens=False).ids
        ]

    def _refuse_unknown(self, index: int, unknown: _Unknown, fill_mask: bool) -> NoReturn:
        """INVALID_ARGUMENT for a text the model sees only as its unknown token."""
        besides = f" but {self.mask_token}" if fill_mask else ""
        consequence = (
            "so there is nothing to predict the mask from"
            if fill_mask
            else "so its vector would say nothing of it; set skip_unknown to embed it anyway"
        )
        characters = self._unknown_characters(unknown.pieces)
        cause = (
            f"{self.spec.name} was not trained on this script (characters its vocabulary lacks: "
            f"{quoted(characters)})"
            if characters
            else f"{self.spec.name}'s vocabulary cannot split these words"
        )
        raise InvalidArgument(
            f"texts[{index}]: {cause}: every token of the text{besides} is its unknown token "
            f"{self.unk_token} (unknown: {quoted(unknown.pieces)}), {consequence}"
        )

    def _fit(
        self, index: int, encoding: Encoding, truncate: bool, prompt_name: str = ""
    ) -> tuple[np.ndarray, tuple[str, ...], bool]:
        ids, tokens = encoding.ids, self._shown(encoding)
        limit = self.spec.max_sequence_length
        if len(ids) <= limit:
            return np.asarray(ids, dtype=np.int64), tuple(tokens), False
        if not truncate:
            counted = (
                f"special tokens and prompt {prompt_name!r}" if prompt_name else "special tokens"
            )
            raise InvalidArgument(
                f"texts[{index}] has {len(ids)} tokens, more than {self.spec.name}'s maximum of "
                f"{limit} ({counted} included); shorten it or set truncate"
            )
        kept = [*ids[: limit - 1], self.sep_id]
        return np.asarray(kept, dtype=np.int64), (*tokens[: limit - 1], tokens[-1]), True

    # -- embeddings -----------------------------------------------------------------------
    def prepare_embed(self, texts: Sequence[str], options: EmbedOptions) -> list[EmbedItem]:
        name = options.prompt_name
        prompt = self.spec.sentence.prompts[name] if name else ""
        start = 0 if not name or self.spec.sentence.include_prompt else self.prompt_lengths[name]
        items = []
        for index, encoding in enumerate(self._encode(texts, prompt)):
            ids, tokens, truncated = self._fit(index, encoding, options.truncate, name)
            kept = range(len(ids) - 1 if truncated else len(ids))  # the cut's [SEP] is added
            unknown = self._unknown(texts[index], encoding, kept, skip=len(prompt))
            if unknown.only and not options.skip_unknown:
                self._refuse_unknown(index, unknown, fill_mask=False)
            items.append(
                EmbedItem(
                    ids=ids,
                    tokens=tokens,
                    truncated=truncated,
                    options=options,
                    unknown_tokens=unknown.pieces,
                    unknown_offsets=unknown.offsets,
                    pool_start=min(start, len(ids) - 1),
                )
            )
        return items

    def _pad(self, rows: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = row
            mask[index, : len(row)] = 1
        inputs = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            inputs["token_type_ids"] = np.zeros_like(ids)
        return inputs

    def encode_batch(self, items: Sequence[EmbedItem]) -> dict[int, np.ndarray]:
        """One padded batch through the encoder, fetching only the layers some item needs:
        layer → (texts, padded tokens, dim)."""
        top = self.spec.num_layers
        needed = sorted({layer for i in items for layer in layers_to_fetch(i.options, top)})
        outputs = self.encoder.run(
            [self.layer_outputs[layer] for layer in needed], self._pad([i.ids for i in items])
        )
        return dict(zip(needed, outputs, strict=True))

    def embed_batch(self, items: Sequence[EmbedItem]) -> list[PooledEmbedding]:
        lengths = np.fromiter((len(item.ids) for item in items), np.int64, len(items))
        return pool_batch(
            items, self.encode_batch(items), lengths, self.spec.num_layers, head=self.head
        )

    # -- fill-mask ------------------------------------------------------------------------
    def prepare_fill_mask(
        self, texts: Sequence[str], top_k: int, truncate: bool = False
    ) -> list[FillMaskItem]:
        """Each text's ids and mask positions; with ``truncate`` a text over the maximum is
        cut to a window around its masks. A text whose every token but the masks is unknown
        is refused: the model would fill its masks from nothing."""
        items = []
        for index, encoding in enumerate(self._encode(texts)):
            ids = np.asarray(encoding.ids, dtype=np.int64)
            masks = np.flatnonzero(ids == self.mask_id)
            if not len(masks):
                raise InvalidArgument(
                    f"texts[{index}] contains no {self.mask_token} token; put {self.mask_token} "
                    "where a word should be predicted"
                )
            kept, truncated = self._window(index, encoding, masks, truncate)
            unknown = self._unknown(texts[index], encoding, kept)
            if unknown.only:
                self._refuse_unknown(index, unknown, fill_mask=True)
            if truncated:
                ids = ids[np.asarray(kept)]
            positions = tuple(int(p) for p in np.flatnonzero(ids == self.mask_id))
            items.append(FillMaskItem(texts[index], ids, positions, top_k, truncated))
        return items

    def _window(
        self, index: int, encoding: Encoding, masks: np.ndarray, truncate: bool
    ) -> tuple[Sequence[int], bool]:
        """The positions a fill-mask text keeps, and whether it was cut: all of them when it
        fits; with ``truncate`` its special tokens and a window centred on its masks, moved
        inside the text at either end."""
        count, limit = len(encoding.ids), self.spec.max_sequence_length
        if count <= limit:
            return range(count), False
        if not truncate:
            raise InvalidArgument(
                f"texts[{index}] has {count} tokens, more than {self.spec.name}'s maximum of "
                f"{limit} (special tokens included); shorten it or set truncate to cut it "
                "around its masks"
            )
        special = encoding.special_tokens_mask  # the tokens the template adds, not the masks
        lead = next(i for i, flag in enumerate(special) if not flag)
        trail = next(i for i, flag in enumerate(reversed(special)) if not flag)
        width = limit - lead - trail
        first, last = int(masks[0]), int(masks[-1])
        span = last - first + 1
        if span > width:
            raise InvalidArgument(
                f"texts[{index}] has {len(masks)} {self.mask_token} tokens spanning {span} "
                f"tokens, more than one window of {self.spec.name}'s maximum of {limit} holds "
                f"({lead + trail} special tokens included); put the masks closer together or "
                "send them in separate texts"
            )
        start = min(max(lead, first - (width - span) // 2), count - trail - width)
        kept = [*range(lead), *range(start, start + width), *range(count - trail, count)]
        return kept, True

    def run_fill_mask(self, items: Sequence[FillMaskItem]) -> list[np.ndarray]:
        """Logits at the masks only: one (masks, vocab) array per item."""
        if self.fill_mask is None:
            raise InvalidArgument(f"{self.spec.name} has no masked-LM head")
        inputs = self._pad([item.ids for item in items])
        inputs["mask_positions"] = np.asarray(
            [(row, position) for row, item in enumerate(items) for position in item.mask_positions],
            dtype=np.int64,
        )
        (logits,) = self.fill_mask.run(["logits"], inputs)
        bounds = np.cumsum([len(item.mask_positions) for item in items])[:-1]
        return list(np.split(logits, bounds))

    def finish_fill_mask(self, item: FillMaskItem, logits: np.ndarray) -> list[list[MaskFill]]:
        """Softmax probabilities and the top-k tokens at each mask, in order."""
        shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(shifted)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        k = min(item.top_k, probabilities.shape[-1])
        results = []
        for mask_index, row in enumerate(probabilities):
            best = np.argpartition(-row, k - 1)[:k]
            best = best[np.argsort(-row[best], kind="stable")]
            results.append(
                [
                    MaskFill(
                        token=self._token(token_id),
                        score=float(row[token_id]),
                        token_id=int(token_id),
                        sequence=self._filled(item.text, mask_index, int(token_id)),
                    )
                    for token_id in best
                ]
            )
        return results

    def _token(self, token_id: int) -> str:
        return self.tokenizer.id_to_token(token_id) or ""

    def _filled(self, text: str, mask_index: int, token_id: int) -> str:
        """The text with its ``mask_index``-th mask replaced by the token (other masks kept).

        As transformers' fill-mask decodes it: a continuation piece (``##ing``, or a BPE or
        SentencePiece piece without its word-start mark) joins the word before it, a piece that
        starts a word is one, and a special token is left out.
        """
        parts = text.split(self.mask_token)
        if mask_index + 1 >= len(parts):
            return text
        token = self._token(token_id)
        before = self.mask_token.join(parts[: mask_index + 1])
        after = self.mask_token.join(parts[mask_index + 1 :])
        if token_id in self.special_ids:
            return " ".join(part for part in (before.rstrip(), after.lstrip()) if part)
        if self.word_piece:
            if token.startswith(CONTINUATION) and before.strip():
                return f"{before.rstrip()}{token[len(CONTINUATION) :]}{after}"
            return f"{before}{token}{after}"
        piece = self.tokenizer.decode([token_id])
        if not token.startswith(WORD_START):  # continues the word before the mask
            return f"{before.rstrip()}{piece}{after}"
        word = piece.strip()
        return f"{before.rstrip()} {word}{after}" if before.strip() else f"{word}{after}"

    # -- lifecycle ------------------------------------------------------------------------
    def warmup(self) -> None:
        """Run every graph once at a few lengths so the first request is not the slow one
        (fill-mask on the mask alone: no word of it can be unknown to the vocabulary)."""
        warm_up_embeddings(self)
        if self.fill_mask is not None:
            fills = self.prepare_fill_mask([self.mask_token], 1)
            self.finish_fill_mask(fills[0], self.run_fill_mask(fills)[0])

    def close(self) -> None:
        self.fill_mask = None
