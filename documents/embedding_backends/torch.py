"""The reference backend: sentence-transformers on PyTorch, float32 (``EMBEDDING_BACKEND=torch``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from documents.embedding_backends.base import Backend, EmbeddingModelError, tokens_add_up

if TYPE_CHECKING:
    import numpy as np


class TorchBackend(Backend):
    name = "torch"
    precision = "fp32"

    def __init__(self, model_dir: Path) -> None:
        # Never reach for a model hub: models come from installed packages or local folders.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bars in worker logs
        try:
            self.model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        except Exception as exc:
            raise EmbeddingModelError(f"cannot load the embedding model from {model_dir}: {exc}") from exc
        self.dimensions = int(self.model.get_embedding_dimension() or 0)
        self.max_seq_length = int(self.model.max_seq_length or 0)
        backend_tokenizer = getattr(self.model.tokenizer, "backend_tokenizer", None)  # a fast tokenizer's
        self.tokens_add_up = backend_tokenizer is not None and tokens_add_up(backend_tokenizer)

    def count_tokens(self, text: str) -> int:
        encoded = self.model.tokenizer(
            text,
            add_special_tokens=True,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # no "longer than the maximum length" warning: we are measuring
        )
        return len(encoded["input_ids"])

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import numpy as np

        if not texts:  # encode() answers an empty list with shape (0,)
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)
