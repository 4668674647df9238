"""Import word vectors in the C word2vec formats (text or binary) into the model repository.

gensim reads the file (it is the reference: served vectors must equal its ``KeyedVectors``);
the vocabulary is written in gensim's row order and the graphs are validated against gensim:
lookups must be identical for every row, similarity scores equal ``most_similar``'s within
``TOLERANCE``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from gensim.models import KeyedVectors

from export.publish import publish_version
from export.spec import ExportSpec, GraphExportSpec
from export.validate import (
    Arrays,
    ValidationFailed,
    cpu_session,
    raise_unless_passed,
    validate_graph,
)
from export.word2vec.graphs import (
    LOOKUP_TOLERANCE,
    lookup_model,
    save_model,
    similarity_model,
    unit_rows,
    word2vec_export_spec,
)
from modelrepo import (
    CheckResult,
    GraphValidation,
    ModelSpec,
    ValidationReport,
    VariantReport,
    sha256_of_files,
)
from modelrepo.validation import UNOPTIMIZED
from modelrepo.vocabulary import VOCABULARY_FILE, read_vocabulary, write_vocabulary

log = logging.getLogger(__name__)

# Words per text the server accepts (longer texts: INVALID_ARGUMENT, or cut with truncate).
MAX_WORDS_PER_TEXT = 10_000
# Rows per ONNX Runtime call when every row of the lookup graph is compared with gensim.
_ROWS_PER_CHECK = 1 << 16


def load_c_format(path: Path, binary: bool) -> KeyedVectors:
    """The vectors of a C word2vec file as gensim reads them."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    vectors: KeyedVectors = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    return vectors


def _checked_matrix(vectors: KeyedVectors) -> np.ndarray:
    matrix = np.ascontiguousarray(vectors.vectors, dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        words = [vectors.index_to_key[row] for row in np.flatnonzero(~finite)[:5]]
        raise ValueError(f"vectors with NaN or infinite values (e.g. of {words}); fix the source")
    if not matrix.any():
        raise ValueError("every vector is zero; there is nothing to serve")
    return matrix


class _LookupInputs:
    """Seeded id batches that always include the first and the last row."""

    def __init__(self, vocab_size: int, seed: int = 0) -> None:
        self.vocab_size, self.seed = vocab_size, seed

    def __call__(self, batch: int, sequence: int) -> Arrays:
        rng = np.random.default_rng([self.seed, batch, sequence])
        ids = rng.integers(0, self.vocab_size, size=(batch, sequence), dtype=np.int64)
        ids.flat[0], ids.flat[-1] = 0, self.vocab_size - 1
        return {"input_ids": ids}


class _SimilarityQueries:
    """Unit-length means of one to three random words' unit vectors (as analogy queries are)."""

    def __init__(self, vectors: KeyedVectors, seed: int = 1) -> None:
        self.vectors, self.seed = vectors, seed
        self.candidates = np.flatnonzero(np.linalg.norm(vectors.vectors, axis=1) > 0)

    def __call__(self, batch: int, sequence: int) -> Arrays:
        rng = np.random.default_rng([self.seed, batch, sequence])
        rows = []
        for _ in range(batch):
            count = min(len(self.candidates), int(rng.integers(1, 4)))
            rows_used = rng.choice(self.candidates, size=count, replace=False)
            signs = np.where(np.arange(count) == 0, 1.0, rng.choice([1.0, -1.0], size=count))
            keys = [self.vectors.index_to_key[int(row)] for row in rows_used]
            rows.append(
                self.vectors.get_mean_vector(keys, signs, pre_normalize=True, post_normalize=True)
            )
        return {"query": np.asarray(rows, dtype=np.float32)}


def _validate_lookup(
    path: Path, graph: GraphExportSpec, vectors: KeyedVectors, words: list[str], spec: ExportSpec
) -> GraphValidation:
    """Exact at the validation shapes (looked up by word in gensim), then every row compared."""

    def reference(inputs: Arrays) -> Arrays:
        ids = inputs["input_ids"]
        found = np.stack([vectors.get_vector(words[int(i)]) for i in ids.ravel()])
        return {"vectors": found.reshape(*ids.shape, -1)}

    report = validate_graph(
        path,
        graph,
        _LookupInputs(len(words)),
        reference,
        LOOKUP_TOLERANCE,
        spec.validation_shapes,
    )
    raise_unless_passed(report)
    session = cpu_session(path)
    for start in range(0, len(words), _ROWS_PER_CHECK):
        ids = np.arange(start, min(start + _ROWS_PER_CHECK, len(words)), dtype=np.int64)
        (rows,) = session.run(["vectors"], {"input_ids": ids[None]})
        if not np.array_equal(rows[0], vectors.vectors[ids]):
            raise ValidationFailed(f"lookup: rows {start}.. differ from gensim's vectors")
    every_row = CheckResult(passed=True, detail=f"{len(words)} rows compared")
    return _entry(graph, report, {"all_rows_identical": every_row})


def _validate_similarity(
    path: Path, graph: GraphExportSpec, vectors: KeyedVectors, spec: ExportSpec
) -> GraphValidation:
    """Scores against gensim's own ``most_similar(topn=None)`` for the same query vectors."""

    def reference(inputs: Arrays) -> Arrays:
        rows = [vectors.most_similar(positive=[query], topn=None) for query in inputs["query"]]
        return {"scores": np.asarray(rows, dtype=np.float32)}

    norms = np.linalg.norm(vectors.vectors, axis=1)

    def with_direction(name: str, inputs: Arrays) -> np.ndarray:
        # gensim divides by the norm: a zero vector scores NaN there and 0 here; not compared
        return np.broadcast_to(norms > 0, (len(inputs["query"]), len(norms)))

    with np.errstate(divide="ignore", invalid="ignore"):
        report = validate_graph(
            path,
            graph,
            _SimilarityQueries(vectors),
            reference,
            spec.tolerance,
            spec.validation_shapes,
            with_direction,
        )
    raise_unless_passed(report)
    return _entry(graph, report)


def _entry(
    graph: GraphExportSpec,
    report: VariantReport,
    checks: dict[str, CheckResult] | None = None,
) -> GraphValidation:
    """One graph's part of validation.json: one variant, never optimized."""
    return GraphValidation(
        file=graph.file,
        passed=report.passed,
        tolerance=report.tolerance,
        optimized=False,
        max_abs_diff=report.max_abs_diff,
        variants={UNOPTIMIZED: report},
        checks=checks or {},
    )


def export_word2vec(
    vectors: KeyedVectors,
    models_dir: Path,
    name: str,
    version: int | None,
    source: str,
    source_checksum: str,
    with_similarity: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write vocabulary and graphs, validate them against gensim, publish the version."""
    words = list(vectors.index_to_key)
    matrix = _checked_matrix(vectors)
    spec = word2vec_export_spec(len(words), vectors.vector_size, with_similarity)
    unreachable = sum(1 for word in words if len(word.split()) != 1)
    if unreachable:
        log.warning(
            "%d words contain whitespace: Embed (which splits texts at whitespace) cannot reach "
            "them, MostSimilar can",
            unreachable,
        )

    def build(staging: Path, number: int) -> tuple[ModelSpec, ValidationReport]:
        write_vocabulary(staging / VOCABULARY_FILE, words)
        if read_vocabulary(staging / VOCABULARY_FILE) != words:
            raise ValidationFailed(f"{VOCABULARY_FILE} does not read back as written")
        reports: dict[str, GraphValidation] = {}
        lookup = spec.graph("lookup")
        save_model(lookup_model(lookup, matrix), staging / lookup.file)
        reports["lookup"] = _validate_lookup(staging / lookup.file, lookup, vectors, words, spec)
        if with_similarity:
            similarity = spec.graph("similarity")
            save_model(similarity_model(similarity, unit_rows(matrix)), staging / similarity.file)
            reports["similarity"] = _validate_similarity(
                staging / similarity.file, similarity, vectors, spec
            )
        model_spec = ModelSpec(
            name=name,
            version=number,
            architecture="word2vec",
            capabilities=("embed", "most_similar") if with_similarity else ("embed",),
            graphs={graph.role: graph.to_graph_spec() for graph in spec.graphs},
            hidden_size=vectors.vector_size,
            num_layers=0,
            default_layers=(0,),
            default_pooling="mean",
            max_sequence_length=MAX_WORDS_PER_TEXT,
            tokenizer_files=(VOCABULARY_FILE,),
            opset=spec.opset,
            tolerance=spec.tolerance,
            source=source,
            source_checksum=source_checksum,
            extra={
                "vocab_size": len(words),
                "tokenization": "whitespace split, exact match (case and punctuation kept)",
                "words_with_whitespace": unreachable,
                **(extra or {}),
            },
        )
        return model_spec, ValidationReport(passed=True, tolerance=spec.tolerance, graphs=reports)

    return publish_version(models_dir, name, version, build)


def import_word2vec(
    path: Path,
    binary: bool,
    models_dir: Path,
    name: str,
    version: int | None = None,
    with_similarity: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    """``python -m export word2vec --from-file PATH``: load, export, validate, publish."""
    vectors = load_c_format(path, binary)
    kind = "binary" if binary else "text"
    return export_word2vec(
        vectors,
        models_dir,
        name,
        version,
        source=f"word2vec-{kind}:{path.resolve()}",
        source_checksum=sha256_of_files([path]),
        with_similarity=with_similarity,
        extra={"source_format": kind, **(extra or {})},
    )
