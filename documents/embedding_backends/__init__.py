"""Engines that run the embedding model, behind one contract (``base.Backend``).

- ``torch``: sentence-transformers on PyTorch, float32 — the reference.
- ``onnx``: ONNX Runtime on an int8 export of the same weights (``artifact.py``).
- ``openvino``: OpenVINO on the float32 export, computing in bf16 where the CPU can.

``documents.embeddings`` is the only caller in the product; it picks the backend named by
``EMBEDDING_BACKEND`` through ``load``. The exported backends never import torch.
"""

from __future__ import annotations

from pathlib import Path

from documents.embedding_backends.base import Backend, EmbeddingModelError, ModelLayout

BACKENDS = ("torch", "onnx", "openvino")
# How each backend computes: part of the stored model name, so a switch means a re-index.
PRECISIONS = {"torch": "fp32", "onnx": "int8", "openvino": "bf16"}

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "EmbeddingModelError", "load"]


def load(backend: str, model_dir: Path, cache_dir: Path) -> Backend:
    """The model in ``model_dir`` run by ``backend``; exports it into ``cache_dir`` first if needed."""
    if backend == "torch":
        from documents.embedding_backends.torch import TorchBackend

        return TorchBackend(model_dir)
    if backend not in BACKENDS:
        raise EmbeddingModelError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from documents.embedding_backends import artifact

    layout = ModelLayout.read(model_dir)
    folder, manifest, _ = artifact.ensure_built(model_dir, cache_dir)
    if backend == "onnx":
        from documents.embedding_backends.onnx import OnnxBackend

        return OnnxBackend(layout, folder, manifest)
    from documents.embedding_backends.openvino import OpenVINOBackend

    return OpenVINOBackend(layout, folder, manifest)
