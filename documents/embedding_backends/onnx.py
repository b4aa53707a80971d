"""ONNX Runtime on the int8 export (``EMBEDDING_BACKEND=onnx``): no torch in the process.

The graph is the transformer with its MatMul weights quantised per output channel and its
activations quantised on the fly (``artifact.py``). Its speed comes from int8 dot products:
VNNI (AVX-512 VNNI or AVX-VNNI) makes them several times faster than float32 on the CPUs that
have it; on older ones the gain is smaller — measure with ``make bench PART=backends``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from documents.embedding_backends.base import EmbeddingModelError, GraphBackend, ModelLayout

if TYPE_CHECKING:
    import numpy as np


class OnnxBackend(GraphBackend):
    name = "onnx"
    precision = "int8"

    def __init__(self, layout: ModelLayout, artifact: Path, manifest: dict) -> None:
        super().__init__(layout)
        try:
            import onnxruntime
        except ImportError as exc:
            raise EmbeddingModelError(
                "EMBEDDING_BACKEND=onnx needs the onnxruntime package: pip install -r requirements.txt"
            ) from exc
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no per-node placement notes in the logs
        try:
            self.session = onnxruntime.InferenceSession(
                str(artifact / "model-int8.onnx"), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise EmbeddingModelError(f"ONNX Runtime cannot load {artifact / 'model-int8.onnx'}: {exc}") from exc
        self.input_names = [graph_input.name for graph_input in self.session.get_inputs()]
        self._output = self.session.get_outputs()[0].name

    def _infer_all(self, batches: Iterable[tuple[list[int], dict, np.ndarray]], store: Callable) -> None:
        # One batch after the other: ONNX Runtime spreads each over the cores itself.
        for rows, feed, attention_mask in batches:
            store(rows, attention_mask, self.session.run([self._output], feed)[0])
