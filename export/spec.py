"""What an architecture's exporter declares about its ONNX graphs (one ``ExportSpec`` each)."""

from __future__ import annotations

from dataclasses import dataclass

from modelrepo import GraphSpec, TensorSpec

BATCH = "batch_size"
SEQUENCE = "sequence_length"

# Shapes the validation runs at; deliberately different from every example used for export,
# so the graph proves that its axes are dynamic.
VALIDATION_SHAPES: tuple[tuple[int, int], ...] = ((1, 8), (3, 33), (5, 96))


@dataclass(frozen=True)
class GraphExportSpec:
    """One graph: its role in the model, file name and declared tensors."""

    role: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The ``dynamic_axes`` argument of ``torch.onnx.export`` for these tensors."""
        axes: dict[str, dict[int, str]] = {}
        for tensor in self.inputs + self.outputs:
            named = {i: axis for i, axis in enumerate(tensor.shape) if isinstance(axis, str)}
            if named:
                axes[tensor.name] = named
        return axes

    @property
    def input_names(self) -> list[str]:
        return [tensor.name for tensor in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [tensor.name for tensor in self.outputs]

    def to_graph_spec(self) -> GraphSpec:
        return GraphSpec(file=self.file, inputs=self.inputs, outputs=self.outputs)


@dataclass(frozen=True)
class ExportSpec:
    """An architecture's export contract: graphs, opset and the tolerance it is validated at."""

    architecture: str
    opset: int
    tolerance: float
    graphs: tuple[GraphExportSpec, ...]
    validation_shapes: tuple[tuple[int, int], ...] = VALIDATION_SHAPES

    def graph(self, role: str) -> GraphExportSpec:
        for graph in self.graphs:
            if graph.role == role:
                return graph
        raise KeyError(f"{self.architecture} declares no {role!r} graph")
