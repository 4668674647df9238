"""The command that rebuilds a model version, derived from its spec's ``source``.

A server that refuses a damaged model says how to make it whole again; the exporter records
where the weights came from (``hf:DIR``, ``bilm-hdf5:WEIGHTS``, ``word2vec-text|binary:PATH``),
and the default models are imported from their training checkpoints in ``build/checkpoints``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # repository.py imports this module
    from modelrepo.repository import ModelSpec

# What ``python -m export defaults`` builds, in this order: word2vec is ready in about 30 s and a
# server polling the same repository picks each one up as soon as it is published.
DEFAULT_MODELS = ("word2vec", "bert", "elmo")
BUILDING = {
    "word2vec": "training the default word2vec (gensim) and exporting it to ONNX",
    "bert": "training the default BERT and exporting it to ONNX",
    "elmo": "training the default ELMo biLM and exporting it to ONNX",
}
"""What a server says of each default while ``defaults`` builds it (the builder adds its step
and measured time left)."""
TRAINED_UNDER = "build/checkpoints/"


def rebuild_command(spec: ModelSpec, directory: Path) -> str:
    """What to run to rebuild ``directory`` (removing it first: every version is loaded)."""
    kind, _, path = spec.source.partition(":")
    name = spec.name
    reduced = {"fp32": "", "int8": " --quantize int8", "fp16": " --fp16"}[spec.precision]
    if TRAINED_UNDER in path:
        export = (
            "python -m export defaults"
            if name in DEFAULT_MODELS and name == spec.architecture and not reduced
            else f"python -m export {spec.architecture} --train --name {name}{reduced}"
        )
    elif kind == "hf":
        export = f"python -m export bert --from-hf {path} --name {name}{reduced}"
    elif kind == "bilm-hdf5":
        export = (
            f"python -m export elmo --options {Path(path).parent / 'options.json'} "
            f"--weights {path} --name {name}"
        )
    elif kind.startswith("word2vec-"):
        binary = " --binary" if kind == "word2vec-binary" else ""
        export = f"python -m export word2vec --from-file {path}{binary} --name {name}"
    else:
        export = f"python -m export {spec.architecture} ... --name {name} (source {spec.source})"
    return f"rm -r {directory} && {export}"
