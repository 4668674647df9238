"""A sentence-transformers folder's pipeline, read at import so the model is served as its
authors' ``SentenceTransformer.encode`` computes it.

Read: ``modules.json`` (Transformer → Pooling → Dense… → Normalize, in that order), the Pooling
config (``cls``, ``mean``, ``max``, ``mean_sqrt_len_tokens``; ``include_prompt``), each Dense
module's config and weights, ``sentence_bert_config.json`` (``max_seq_length``,
``do_lower_case``) and ``config_sentence_transformers.json`` (prompts, default prompt,
similarity function). Both
layouts are read: the one sentence-transformers 2.x/3.x wrote, which most published checkpoints
carry (``pooling_mode_*_token`` flags, ``max_seq_length`` in ``sentence_bert_config.json``), and
the current one (``pooling_mode``, the length in the tokenizer's ``model_max_length``). A module
or setting the server cannot reproduce fails the import, naming it: nothing is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.bert.tokenizer import HUB_OPTIONS
from modelrepo.sentence import Activation, Similarity

MODULES_FILE = "modules.json"
POOLINGS = {"cls": "cls", "mean": "mean", "max": "max", "mean_sqrt_len_tokens": "mean_sqrt_len"}
"""sentence-transformers' pooling modes → the served pooling."""
LEGACY_POOLINGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
TANH = "torch.nn.modules.activation.Tanh"
ACTIVATIONS: dict[str, Activation] = {
    "torch.nn.modules.linear.Identity": "identity",
    TANH: "tanh",
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.activation.GELU": "gelu",
}
SIMILARITIES: dict[str, Similarity] = {
    "cosine": "cosine",
    "dot": "dot",
    "dot_product": "dot",
    "euclidean": "euclidean",
    "manhattan": "manhattan",
}
"""sentence-transformers' ``similarity_fn_name`` values → ours (MaxSim, of multi-vector models,
is not served)."""
CONFIG_FILES = (
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_xlm-roberta_config.json",
)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""Where a checkpoint or a module keeps its weights, in the order they are looked for."""
WEIGHT_SUFFIXES = (".safetensors", ".bin")
MODEL_OPTIONS = HUB_OPTIONS | {"torch_dtype", "dtype", "attn_implementation", "trust_remote_code"}
"""Model arguments that change how weights load, not what the model computes."""


@dataclass(frozen=True)
class Dense:
    """One Dense module: its weights (out x in, out) and activation."""

    weight: np.ndarray
    bias: np.ndarray
    activation: Activation


@dataclass(frozen=True)
class SentencePipeline:
    """What the folder says turns token vectors into its sentence embedding."""

    transformer_dir: Path
    """The Hugging Face checkpoint of its Transformer module."""
    pooling: str
    include_prompt: bool = True
    dense: tuple[Dense, ...] = ()
    normalize: bool = False
    max_seq_length: int | None = None
    """Tokens per text where the folder says (over the tokenizer's own limit)."""
    lowercase: bool = False
    tokenizer_options: dict[str, Any] = field(default_factory=dict)
    """Arguments the folder gives its tokenizer (``processor_kwargs``, ``tokenizer_args``)."""
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity: Similarity = "cosine"
    files: tuple[Path, ...] = ()
    """The folder's own files read (configurations, Dense weights), for the source checksum."""


def read_sentence_pipeline(folder: Path) -> SentencePipeline | None:
    """The folder's pipeline, or None for a plain checkpoint (no ``modules.json``)."""
    path = folder / MODULES_FILE
    if not path.is_file():
        return None
    modules = _read(path)
    if not isinstance(modules, list) or not modules:
        raise ValueError(f"{path}: expected a list of modules")
    kinds = [(_kind(path, module), folder / str(module.get("path", ""))) for module in modules]
    names = [kind for kind, _ in kinds]
    if names[:2] != ["Transformer", "Pooling"]:
        raise ValueError(
            f"{path}: the modules are {names}; this importer serves Transformer, then Pooling, "
            "then Dense layers, then Normalize"
        )
    rest = names[2:]
    normalize = bool(rest) and rest[-1] == "Normalize"
    middle = rest[:-1] if normalize else rest
    if any(kind != "Dense" for kind in middle):
        raise ValueError(
            f"{path}: module order {names} is not served (Dense layers go between Pooling and "
            "Normalize)"
        )
    transformer_dir = kinds[0][1]
    pooling, include_prompt = _pooling(kinds[1][1] / "config.json")
    if normalize:
        _check_normalize(kinds[-1][1] / "config.json")
    settings_path, settings = _transformer_settings(transformer_dir, folder)
    tokenizer_options = _tokenizer_options(settings_path, settings)
    max_seq_length = settings.get("max_seq_length")
    settings_file = folder / "config_sentence_transformers.json"
    prompts, default_prompt = _prompts(settings_file)
    module_files = [
        path
        for _, directory in kinds[1:]
        if directory.is_dir()
        for path in sorted(directory.iterdir())
        if path.suffix in (".json", *WEIGHT_SUFFIXES)
    ]
    return SentencePipeline(
        transformer_dir=transformer_dir,
        pooling=pooling,
        include_prompt=include_prompt,
        dense=tuple(_dense(directory) for kind, directory in kinds[2:] if kind == "Dense"),
        normalize=normalize,
        # the tokenizer's own argument wins over max_seq_length, as in sentence-transformers
        max_seq_length=None if "model_max_length" in tokenizer_options else max_seq_length,
        lowercase=bool(settings.get("do_lower_case", False)),
        tokenizer_options=tokenizer_options,
        prompts=prompts,
        default_prompt_name=default_prompt,
        similarity=_similarity(settings_file),
        files=tuple(
            file
            for file in (path, settings_file, settings_path, *module_files)
            if file is not None and file.is_file()
        ),
    )


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot be read ({error})") from None


def _kind(path: Path, module: Any) -> str:
    """A module's class name from its ``type`` (the module path differs between versions);
    one the server cannot reproduce is an error naming it."""
    kind = str(module.get("type", "")) if isinstance(module, dict) else ""
    name = kind.rsplit(".", 1)[-1]
    if name not in ("Transformer", "Pooling", "Dense", "Normalize"):
        raise ValueError(
            f"{path}: module {kind or module!r} is not supported; served modules: Transformer, "
            "Pooling, Dense, Normalize"
        )
    return name


def _pooling(path: Path) -> tuple[str, bool]:
    """The single pooling mode (either layout) and whether prompt tokens are pooled."""
    config = _read(path)
    modes = config.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in LEGACY_POOLINGS.items() if config.get(key)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else list(modes)
    if len(modes) != 1:
        raise ValueError(f"{path}: pooling modes {modes} are concatenated; one mode is served")
    if modes[0] not in POOLINGS:
        raise ValueError(
            f"{path}: pooling mode {modes[0]!r} is not supported (served: {sorted(POOLINGS)})"
        )
    return POOLINGS[modes[0]], bool(config.get("include_prompt", True))


def _transformer_settings(
    transformer_dir: Path, folder: Path
) -> tuple[Path | None, dict[str, Any]]:
    """The Transformer module's settings file and contents, where the folder keeps them."""
    for directory in dict.fromkeys((transformer_dir, folder)):
        for name in CONFIG_FILES:
            if (directory / name).is_file():
                settings = _read(directory / name)
                return directory / name, settings if isinstance(settings, dict) else {}
    return None, {}


def _tokenizer_options(path: Path | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The tokenizer's arguments, after refusing settings that change the model in ways the
    export would not see (another task, another output, arguments to its config or weights)."""
    task = settings.get("transformer_task")
    if task not in (None, "feature-extraction"):
        raise ValueError(f"{path}: transformer_task {task!r} is not served (feature-extraction)")
    output = settings.get("module_output_name")
    if output not in (None, "token_embeddings"):
        raise ValueError(f"{path}: module_output_name {output!r} is not served")
    for key, allowed in (
        ("config_kwargs", HUB_OPTIONS),
        ("config_args", HUB_OPTIONS),
        ("model_kwargs", MODEL_OPTIONS),
        ("model_args", MODEL_OPTIONS),
    ):
        refused = sorted(set(settings.get(key) or {}) - allowed)
        if refused:
            raise ValueError(f"{path}: {key} {refused} would change the model; not supported")
    options = settings.get("processor_kwargs") or settings.get("tokenizer_args") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{path}: the tokenizer's arguments are not a mapping: {options!r}")
    return options


def _check_normalize(path: Path) -> None:
    config = _read(path) if path.is_file() else {}
    source = config.get("module_input_name") if isinstance(config, dict) else None
    if source not in (None, "sentence_embedding"):
        raise ValueError(f"{path}: a Normalize module on {source!r} is not supported")


def _prompts(path: Path) -> tuple[dict[str, str], str | None]:
    if not path.is_file():
        return {}, None
    config = _read(path)
    raw = config.get("prompts") or {}
    if not isinstance(raw, dict) or not all(isinstance(text, str) for text in raw.values()):
        raise ValueError(f"{path}: prompts must map names to texts, got {raw!r}")
    prompts = {str(name): text for name, text in raw.items()}
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ValueError(f"{path}: default_prompt_name {default!r} is not among its prompts")
    return prompts, default


def _similarity(path: Path) -> Similarity:
    """The folder's similarity function; cosine where it names none (as sentence-transformers)."""
    name = _read(path).get("similarity_fn_name") if path.is_file() else None
    if name is None:
        return "cosine"
    if name not in SIMILARITIES:
        raise ValueError(
            f"{path}: similarity_fn_name {name!r} is not known (known: {sorted(SIMILARITIES)})"
        )
    return SIMILARITIES[name]


def _dense(directory: Path) -> Dense:
    """A Dense module's activation and weights (``linear.weight``, ``linear.bias``)."""
    config = _read(directory / "config.json")
    # sentence-transformers' Dense defaults to Tanh when its config names no activation
    activation = ACTIVATIONS.get(str(config.get("activation_function", TANH)))
    if activation is None:
        raise ValueError(
            f"{directory}: activation {config.get('activation_function')!r} is not supported "
            f"(served: {sorted(ACTIVATIONS)})"
        )
    if config.get("use_residual"):
        raise ValueError(f"{directory}: a residual Dense module is not supported")
    for key in ("module_input_name", "module_output_name"):
        if config.get(key, "sentence_embedding") not in ("sentence_embedding", None):
            raise ValueError(f"{directory}: a Dense module on {config[key]!r} is not supported")
    weights = _weights(directory)
    if "linear.weight" not in weights:
        raise ValueError(f"{directory}: no linear.weight among the Dense weights {sorted(weights)}")
    weight = weights["linear.weight"]
    declared = (
        config.get("in_features", weight.shape[1]),
        config.get("out_features", weight.shape[0]),
    )
    if declared != (weight.shape[1], weight.shape[0]):
        raise ValueError(
            f"{directory}: the config says {declared[0]} -> {declared[1]}, the weights are "
            f"{weight.shape[1]} -> {weight.shape[0]}"
        )
    bias = weights.get("linear.bias")
    if bias is None:
        bias = np.zeros(weight.shape[0], dtype=np.float32)
    return Dense(weight, bias, activation)


def _weights(directory: Path) -> dict[str, np.ndarray]:
    if (directory / WEIGHT_FILES[0]).is_file():
        from safetensors.numpy import load_file

        return {
            key: np.asarray(value, np.float32)
            for key, value in load_file(str(directory / WEIGHT_FILES[0])).items()
        }
    if (directory / WEIGHT_FILES[1]).is_file():
        import torch

        state = torch.load(directory / WEIGHT_FILES[1], map_location="cpu", weights_only=True)
        return {key: value.float().numpy() for key, value in state.items()}
    raise ValueError(f"{directory}: no {' or '.join(WEIGHT_FILES)} for the Dense module")
