"""The biLM hyper-parameters of a bilm-tf/AllenNLP ``options.json``, typed and validated.

Only the keys that define the network are read; training-only keys (``n_epochs``,
``batch_size``, ``dropout``, ``n_tokens_vocab``, ...) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INFERENCE_N_CHARACTERS = 262
"""261 character ids at training time plus the padding id 0 the loader prepends."""

ACTIVATIONS = ("relu", "tanh")


class ElmoOptionsError(ValueError):
    """An options file that does not describe a biLM this package can run."""


@dataclass(frozen=True)
class ElmoOptions:
    """Shapes of the char CNN and of the biLSTM (see the module docstring for the source)."""

    char_embedding_dim: int
    filters: tuple[tuple[int, int], ...]
    """(width, count) per convolution, in the order of the weight file."""
    n_highway: int
    activation: str
    n_characters: int
    max_characters_per_token: int
    lstm_dim: int
    """LSTM cell size."""
    projection_dim: int
    """LSTM output (hidden) size and token-embedding size."""
    n_layers: int
    cell_clip: float | None
    proj_clip: float | None
    use_skip_connections: bool

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def n_filters(self) -> int:
        """Width of the concatenated char-CNN output (input of highway and projection)."""
        return sum(count for _, count in self.filters)

    @property
    def output_dim(self) -> int:
        """Width of every output layer: forward and backward halves side by side."""
        return 2 * self.projection_dim

    @classmethod
    def from_json(cls, path: str | Path) -> ElmoOptions:
        """Read and validate an ``options.json`` file."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ElmoOptionsError(f"{path}: not valid JSON ({error})") from error
        try:
            return cls.from_dict(data)
        except ElmoOptionsError as error:
            raise ElmoOptionsError(f"{path}: {error}") from error

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ElmoOptions:
        """Build from the parsed JSON object (``{"lstm": {...}, "char_cnn": {...}}``)."""
        if not isinstance(data, Mapping):
            raise ElmoOptionsError("options must be a JSON object")
        if data.get("bidirectional", True) is not True:
            raise ElmoOptionsError("only bidirectional language models are supported")
        lstm = _section(data, "lstm")
        cnn = _section(data, "char_cnn")
        embedding = _section(cnn, "embedding", "char_cnn.")
        filters = _required(cnn, "filters", "char_cnn.")
        if not isinstance(filters, list) or not all(
            isinstance(f, list | tuple) and len(f) == 2 for f in filters
        ):
            raise ElmoOptionsError(
                f"char_cnn.filters must be a list of [width, count] pairs, got {filters!r}"
            )
        return cls(
            char_embedding_dim=_int(embedding, "dim", "char_cnn.embedding."),
            filters=tuple(
                (_as_int(w, "filter width"), _as_int(n, "filter count")) for w, n in filters
            ),
            n_highway=_int(cnn, "n_highway", "char_cnn."),
            activation=str(_required(cnn, "activation", "char_cnn.")),
            n_characters=_int(cnn, "n_characters", "char_cnn."),
            max_characters_per_token=_int(cnn, "max_characters_per_token", "char_cnn."),
            lstm_dim=_int(lstm, "dim", "lstm."),
            projection_dim=_int(lstm, "projection_dim", "lstm."),
            n_layers=_int(lstm, "n_layers", "lstm."),
            cell_clip=_optional_float(lstm, "cell_clip", "lstm."),
            proj_clip=_optional_float(lstm, "proj_clip", "lstm."),
            use_skip_connections=_bool(lstm, "use_skip_connections", "lstm."),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``options.json`` object (same keys and nesting as bilm-tf writes)."""
        return {
            "lstm": {
                "dim": self.lstm_dim,
                "projection_dim": self.projection_dim,
                "n_layers": self.n_layers,
                "cell_clip": self.cell_clip,
                "proj_clip": self.proj_clip,
                "use_skip_connections": self.use_skip_connections,
            },
            "char_cnn": {
                "embedding": {"dim": self.char_embedding_dim},
                "filters": [[width, count] for width, count in self.filters],
                "n_highway": self.n_highway,
                "activation": self.activation,
                "n_characters": self.n_characters,
                "max_characters_per_token": self.max_characters_per_token,
            },
        }


def _validate(options: ElmoOptions) -> None:
    if options.n_characters != INFERENCE_N_CHARACTERS:
        training_value = options.n_characters == INFERENCE_N_CHARACTERS - 1
        hint = " (261 is the training-time value; use 262 for inference)" if training_value else ""
        raise ElmoOptionsError(
            f"char_cnn.n_characters must be {INFERENCE_N_CHARACTERS}, "
            f"got {options.n_characters}{hint}"
        )
    if options.activation not in ACTIVATIONS:
        raise ElmoOptionsError(
            f"char_cnn.activation must be one of {ACTIVATIONS}, got {options.activation!r}"
        )
    if options.max_characters_per_token < 3:
        raise ElmoOptionsError(
            "char_cnn.max_characters_per_token must be at least 3 "
            f"(begin-of-word, one character, end-of-word), got {options.max_characters_per_token}"
        )
    if not options.filters:
        raise ElmoOptionsError("char_cnn.filters must not be empty")
    for width, count in options.filters:
        if not 1 <= width <= options.max_characters_per_token or count < 1:
            raise ElmoOptionsError(
                f"char_cnn.filters: [{width}, {count}] needs 1 <= width <= "
                f"max_characters_per_token ({options.max_characters_per_token}) and count >= 1"
            )
    positive = {
        "char_cnn.embedding.dim": options.char_embedding_dim,
        "lstm.dim": options.lstm_dim,
        "lstm.projection_dim": options.projection_dim,
        "lstm.n_layers": options.n_layers,
    }
    for name, value in positive.items():
        if value < 1:
            raise ElmoOptionsError(f"{name} must be positive, got {value}")
    if options.n_highway < 0:
        raise ElmoOptionsError(f"char_cnn.n_highway must be >= 0, got {options.n_highway}")
    clips = {"lstm.cell_clip": options.cell_clip, "lstm.proj_clip": options.proj_clip}
    for name, clip in clips.items():
        if clip is not None and not clip > 0:
            raise ElmoOptionsError(f"{name} must be positive or null, got {clip}")


def _section(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = _required(data, key, prefix)
    if not isinstance(value, Mapping):
        raise ElmoOptionsError(f"{prefix}{key} must be an object, got {value!r}")
    return value


def _required(data: Mapping[str, Any], key: str, prefix: str) -> Any:
    if key not in data:
        raise ElmoOptionsError(f"missing key {prefix}{key}")
    return data[key]


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ElmoOptionsError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _int(data: Mapping[str, Any], key: str, prefix: str) -> int:
    return _as_int(_required(data, key, prefix), f"{prefix}{key}")


def _bool(data: Mapping[str, Any], key: str, prefix: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ElmoOptionsError(f"{prefix}{key} must be true or false, got {value!r}")
    return value


def _optional_float(data: Mapping[str, Any], key: str, prefix: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ElmoOptionsError(f"{prefix}{key} must be a number or null, got {value!r}")
    return float(value)
