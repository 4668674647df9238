"""Architectures the exporter can produce, each with its export contract.

Adding an architecture here without a test marked ``validates_architecture("<name>")`` fails
the test suite (``tests/unit/export/test_registry.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from export.bert.graphs import bert_export_spec
from export.elmo.graphs import elmo_export_spec
from export.spec import ExportSpec
from export.word2vec.graphs import word2vec_export_spec

# name → factory of its ExportSpec (arguments depend on the architecture)
ARCHITECTURES: dict[str, Callable[..., ExportSpec]] = {
    "bert": bert_export_spec,
    "elmo": elmo_export_spec,
    "word2vec": word2vec_export_spec,
}
