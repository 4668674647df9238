"""Tiny random-weight BERT-family checkpoints and sentence-transformers folders built from them.

Parity tests compare our ONNX serving with ``transformers`` and ``SentenceTransformer.encode``
on these: every family's tokenizer kind (WordPiece, byte-level BPE, Unigram) and both layouts
of sentence-transformers folders (6.x's and the 2.x/3.x one that hub checkpoints still carry),
all offline, deterministic and built in seconds.

The ``tokenizer.json`` pipelines are the ones transformers 5 rebuilds on load (its model
tokenizer classes keep only the vocabulary and merges of the file and set their own normalizer,
pre-tokenizer, decoder and post-processor), so ``tokenizers`` alone tokenizes as transformers.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import (
    Dense,
    Normalize,
    Pooling,
    Transformer,
)
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertTokenizer,
    DistilBertConfig,
    DistilBertTokenizer,
    ElectraConfig,
    PretrainedConfig,
    RobertaConfig,
    RobertaTokenizer,
    XLMRobertaConfig,
    XLMRobertaTokenizer,
)

from export.corpus import CorpusConfig, generate_corpus
from tests.checkpoints import sentences

ARCHITECTURES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")
MAX_LENGTH = 128
"""Positions of every model (RoBERTa's and XLM-R's table has two more, for their offset)."""
TOKENIZER_MAX_LENGTH = 512
"""The tokenizers' own limit, as hub checkpoints have it: above the positions, so the served
limit must come from the position table (less RoBERTa's offset)."""
# Our spelling -> sentence-transformers 6.3's ``pooling_mode``; "cls", "mean", "max" are both.
POOLING_MODES = {"mean-sqrt-len": "mean_sqrt_len_tokens"}
_BERT_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_ROBERTA_SPECIAL = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3, as in RoBERTa and XLM-R
_MASK = AddedToken("<mask>", lstrip=True, special=True)  # RoBERTa/XLM-R strip the space before it
_LEGACY_TYPES = {"Transformer", "Pooling", "Dense", "Normalize"}
# transformers 5's ``*TokenizerFast`` are aliases of these; BERT's and Electra's: BertTokenizer.
_TOKENIZER_CLASSES: dict[str, type[BertTokenizer | RobertaTokenizer | XLMRobertaTokenizer]] = {
    "roberta": RobertaTokenizer,
    "xlm-roberta": XLMRobertaTokenizer,
    "distilbert": DistilBertTokenizer,
}


@functools.cache
def corpus() -> tuple[str, ...]:
    """A few hundred sentences (~0.1 s to train on): the word soup of ``tests.checkpoints``
    with prompts ("query: ", "passage: "), punctuation and digits, so that test sentences and
    prompts need no unknown token, and a slice of the project corpus for realistic subwords."""
    soup = sentences(300)
    extra = [f"{prefix}: {text}" for prefix in ("query", "passage") for text in soup[:40]]
    extra += [f"{text}, {i} times? yes! {text}." for i, text in enumerate(soup[:40])]
    grammar = generate_corpus(CorpusConfig(seed=5, train_tokens=4_000, heldout_sentences=0))
    return (*soup, *extra, *grammar.train.sentences)


def _train_tokenizer(architecture: str) -> tuple[Tokenizer, str]:
    """A trained ``tokenizers`` pipeline equal to the one transformers rebuilds, and its mask."""
    if architecture not in ("roberta", "xlm-roberta"):
        return _wordpiece(), "[MASK]"
    special: list[str | AddedToken] = [*_ROBERTA_SPECIAL, _MASK]
    if architecture == "roberta":
        tokenizer = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix=""))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer: trainers.Trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(corpus(), trainer=trainer)
        tokenizer.post_processor = processors.RobertaProcessing(
            ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
        )
    else:
        unigram = Tokenizer(models.Unigram())
        unigram.pre_tokenizer = _metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=300, special_tokens=special, unk_token="<unk>", show_progress=False
        )
        unigram.train_from_iterator(corpus(), trainer=trainer)
        pieces = _stable_pieces(json.loads(unigram.to_str())["model"]["vocab"][5:])
        specials = [(token, 0.0) for token in (*_ROBERTA_SPECIAL, "<mask>")]
        tokenizer = Tokenizer(models.Unigram(specials + pieces, unk_id=3))
        tokenizer.add_special_tokens([*_ROBERTA_SPECIAL, _MASK])
        tokenizer.pre_tokenizer = _metaspace()
        tokenizer.decoder = decoders.Metaspace(prepend_scheme="always")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", 0), ("</s>", 2)],
        )
    ids = [tokenizer.token_to_id(token) for token in [*_ROBERTA_SPECIAL, "<mask>"]]
    assert ids == [0, 1, 2, 3, 4], ids
    return tokenizer, "<mask>"


def _wordpiece() -> Tokenizer:
    """BERT's WordPiece pipeline over pieces that BPE learns on words marked at their start.

    The WordPiece trainer (as ``export.bert.tokenizer.train_wordpiece``) numbers its ``##``
    pieces, and so breaks ties between merges, in hash order: another vocabulary on each call.
    """
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.BertNormalizer(strip_accents=None, lowercase=True)
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(), _metaspace()])
    bpe.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=200, show_progress=False))
    pieces = [piece for piece, _ in sorted(bpe.get_vocab().items(), key=lambda item: item[1])]
    chars = sorted({char for piece in pieces for char in piece if char != "▁"})
    words = [piece[1:] if piece[0] == "▁" else f"##{piece}" for piece in pieces if len(piece) > 1]
    vocab = [*_BERT_SPECIAL, *chars, *(f"##{char}" for char in chars), *words]
    tokenizer = Tokenizer(
        models.WordPiece(
            {token: i for i, token in enumerate(dict.fromkeys(vocab))}, unk_token="[UNK]"
        )
    )
    tokenizer.add_special_tokens(list(_BERT_SPECIAL))
    tokenizer.normalizer = bpe.normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return tokenizer


def _metaspace() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="always")]
    )


def _stable_pieces(trained: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The Unigram trainer's pieces, the same on every run: their scores vary in the last bits
    (parallel sums), and the characters added last for coverage get theirs in hash order."""
    pieces = sorted(((p, round(score, 6)) for p, score in trained), key=lambda p: (-p[1], p[0]))
    tail = len(pieces)
    while tail and len(pieces[tail - 1][0]) == 1:
        tail -= 1
    top = pieces[tail][1] if tail < len(pieces) else 0.0
    ordered = sorted(piece for piece, _ in pieces[tail:])
    return pieces[:tail] + [(char, round(top - 1e-4 * i, 6)) for i, char in enumerate(ordered)]


def _config(architecture: str, vocab_size: int) -> PretrainedConfig:
    sizes: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": MAX_LENGTH,
    }
    if architecture == "distilbert":
        return DistilBertConfig(
            vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
            max_position_embeddings=MAX_LENGTH, pad_token_id=0,
        )  # fmt: skip
    if architecture == "electra":
        return ElectraConfig(embedding_size=32, **sizes)
    if architecture == "bert":
        return BertConfig(**sizes)
    # RoBERTa's positions start after padding_idx=1, hence two more of them.
    sizes |= {"max_position_embeddings": MAX_LENGTH + 2, "type_vocab_size": 1}
    family = RobertaConfig if architecture == "roberta" else XLMRobertaConfig
    return family(pad_token_id=1, bos_token_id=0, eos_token_id=2, **sizes)


def save_family_checkpoint(
    architecture: str, directory: Path, with_mlm: bool = True, seed: int = 0
) -> Path:
    """A random ``architecture`` model (MLM head or base) with a trained fast tokenizer, saved
    as ``save_pretrained`` writes it; checked to load back through the Auto classes."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    backend, mask = _train_tokenizer(architecture)
    config = _config(architecture, backend.get_vocab_size())
    torch.manual_seed(seed)
    # The Auto classes give BertForMaskedLM or BertModel, RobertaForMaskedLM or RobertaModel, ...
    model = (AutoModelForMaskedLM if with_mlm else AutoModel).from_config(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(directory)
        kind = _TOKENIZER_CLASSES.get(architecture, BertTokenizer)
        tokenizer = kind(tokenizer_object=backend, model_max_length=TOKENIZER_MAX_LENGTH)
        tokenizer.save_pretrained(directory)
        _check_family_checkpoint(architecture, directory, with_mlm, mask)
    return directory


def _check_family_checkpoint(architecture: str, directory: Path, with_mlm: bool, mask: str) -> None:
    assert AutoConfig.from_pretrained(directory).model_type == architecture
    loaded = AutoTokenizer.from_pretrained(directory)
    mask_id = loaded.convert_tokens_to_ids(mask)
    assert (
        loaded.mask_token == mask
        and mask_id in loaded("the river bank " + mask + " flows")["input_ids"]
    )
    assert loaded.model_max_length == TOKENIZER_MAX_LENGTH
    file = Tokenizer.from_file(str(directory / "tokenizer.json"))
    for text in ("The River bank, 42 times!", "query: apples  and pears", "passage: the old mill"):
        assert loaded(text)["input_ids"] == file.encode(text).ids, (architecture, text)
    model = (AutoModelForMaskedLM if with_mlm else AutoModel).from_pretrained(directory)
    assert model.config.vocab_size == len(loaded) and max(loaded.all_special_ids) < len(loaded)


def save_sentence_transformer(
    directory: Path,
    *,
    architecture: str,
    pooling: str,
    normalize: bool,
    dense_out: int | None = None,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    include_prompt: bool = True,
    max_seq_length: int | None = None,
    seed: int = 0,
) -> Path:
    """A sentence-transformers folder as 6.x saves it: Transformer, Pooling, optional Dense
    (Tanh) and Normalize over a random base checkpoint; checked to load and encode."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}-") as base:
        path = save_family_checkpoint(architecture, Path(base), with_mlm=False, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transformer = Transformer(str(path), max_seq_length=max_seq_length)
        dim = transformer.get_embedding_dimension()
        modules: list[torch.nn.Module] = [
            transformer,
            Pooling(dim, POOLING_MODES.get(pooling, pooling), include_prompt=include_prompt),
        ]
        if dense_out is not None:
            generator = torch.Generator().manual_seed(seed)
            weight = torch.randn(dense_out, dim, generator=generator) / dim**0.5
            bias = torch.randn(dense_out, generator=generator) * 0.1
            modules.append(Dense(dim, dense_out, init_weight=weight, init_bias=bias))
            dim = dense_out
        if normalize:
            modules.append(Normalize())
        model = SentenceTransformer(
            modules=modules, prompts=prompts, default_prompt_name=default_prompt_name, device="cpu"
        )
        model.save(str(directory))
    loaded = SentenceTransformer(str(directory), device="cpu")
    assert loaded.encode(["the river bank"]).shape == (1, dim)
    return directory


def save_legacy_sentence_transformer(new: Path, legacy: Path, do_lower_case: bool = False) -> Path:
    """``new`` (from :func:`save_sentence_transformer`) rewritten in the 2.x/3.x layout that hub
    checkpoints (all-MiniLM-L6-v2, bge, e5) carry, so importers are tested on both; with
    ``do_lower_case``, texts are lower-cased as sentence-transformers does for it."""
    shutil.copytree(new, legacy)
    max_seq_length = _read(legacy / "tokenizer_config.json")["model_max_length"]
    modules = _read(legacy / "modules.json")
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1]
        assert kind in _LEGACY_TYPES, module
        module["type"] = f"sentence_transformers.models.{kind}"
        folder = legacy / module["path"]
        if kind == "Transformer":
            bert_config = {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case}
            _write(folder / "sentence_bert_config.json", bert_config)
            # Hub repositories keep the tokenizer's own limit; theirs is in sentence_bert_config.
            tokenizer_config = _read(folder / "tokenizer_config.json")
            _write(
                folder / "tokenizer_config.json",
                tokenizer_config | {"model_max_length": TOKENIZER_MAX_LENGTH},
            )
        elif kind == "Pooling":
            _write(folder / "config.json", _legacy_pooling(_read(folder / "config.json")))
        elif kind == "Dense":
            config = _read(folder / "config.json")
            assert config["activation_function"] == "torch.nn.modules.activation.Tanh", config
            keys = ("in_features", "out_features", "bias", "activation_function")
            _write(folder / "config.json", {key: config[key] for key in keys})
            # 2.x saved Dense weights with torch.save only
            torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
            (folder / "model.safetensors").unlink()
        else:  # Normalize saved nothing in 2.x/3.x, and git keeps no empty folder.
            shutil.rmtree(folder)
    _write(legacy / "modules.json", modules)
    settings = _read(legacy / "config_sentence_transformers.json")
    versions = {"sentence_transformers": "3.0.1", "transformers": "4.41.2", "pytorch": "2.3.0"}
    settings = {
        "__version__": versions,
        # 6.x adds empty "query" and "document" prompts of its own; 3.x saved only those given.
        "prompts": {name: text for name, text in settings["prompts"].items() if text},
        "default_prompt_name": settings["default_prompt_name"],
        "similarity_fn_name": settings.get("similarity_fn_name") or "cosine",
    }
    _write(legacy / "config_sentence_transformers.json", settings)
    return legacy


def _legacy_pooling(config: dict[str, Any]) -> dict[str, Any]:
    mode = config["pooling_mode"]
    return {
        "word_embedding_dimension": config["embedding_dimension"],
        "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean",
        "pooling_mode_max_tokens": mode == "max",
        "pooling_mode_mean_sqrt_len_tokens": mode == "mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": config["include_prompt"],
    }


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def _write(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
