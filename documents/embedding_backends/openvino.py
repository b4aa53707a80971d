"""OpenVINO on the float32 export (``EMBEDDING_BACKEND=openvino``): no torch in the process.

OpenVINO reads the ONNX graph itself. The inference precision is set to bf16: on CPUs with
native bf16 (AVX-512 BF16 or AMX, e.g. AMD Zen 4, Intel Sapphire Rapids) that is where its
speed comes from; on CPUs without it OpenVINO runs float32 instead. The two agree to a cosine
of about 0.99998, so vectors from either count as the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from documents.embedding_backends.base import EmbeddingModelError, GraphBackend, ModelLayout

if TYPE_CHECKING:
    import numpy as np


class OpenVINOBackend(GraphBackend):
    name = "openvino"
    precision = "bf16"

    def __init__(self, layout: ModelLayout, artifact: Path, manifest: dict) -> None:
        super().__init__(layout)
        try:
            import openvino
        except ImportError as exc:
            raise EmbeddingModelError(
                "EMBEDDING_BACKEND=openvino needs the openvino package: pip install -r requirements.txt"
            ) from exc
        core = openvino.Core()
        try:
            model = core.read_model(str(artifact / "model-fp32.onnx"))
            self.compiled = core.compile_model(
                model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
            )
        except Exception as exc:
            raise EmbeddingModelError(f"OpenVINO cannot load {artifact / 'model-fp32.onnx'}: {exc}") from exc
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self._request = self.compiled.create_infer_request()

    def _token_embeddings(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self._request.infer(feed)[0]
