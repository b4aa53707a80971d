"""What every embedding backend provides, and the parts the exported-graph backends share.

A backend runs one sentence-transformers model folder (a Transformer, then Pooling, then an
optional Normalize) through one engine. Its contract:

- ``name`` and ``precision`` (e.g. ``"onnx"``, ``"int8"``) say how the vectors are made; the
  stored model name carries both, so vectors from different engines are never mixed.
- ``max_seq_length``: the most tokens, special tokens included, the backend embeds before it
  truncates; ``dimensions``: the length of each vector.
- ``count_tokens(text)``: tokens of ``text`` with the model's own tokenizer, special tokens
  included, never truncated; ``count_tokens_many(texts)`` the same for a list, in one call.
- ``tokens_add_up``: True when the tokenizer provably reads text joined at white space as the
  tokens of its parts one after the other (BERT's WordPiece tokenizer does), so
  ``count_tokens(a + " " + b) == count_tokens(a) + count_tokens(b) - count_tokens("")``. The
  chunker then adds counts up instead of tokenising every chunk again. False when unsure.
- ``encode(texts, batch_size)``: a float32 array of shape ``(len(texts), dimensions)``, each
  row L2-normalised, in the order of ``texts``.

Backends are not thread-safe on their own; ``documents.embeddings`` serialises every use.
Loading raises ``EmbeddingModelError`` with a readable message when the model cannot be used.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer


class EmbeddingModelError(RuntimeError):
    """The embedding model is missing or unusable; the message says what to fix."""


class Backend(ABC):
    name: str
    precision: str
    max_seq_length: int
    dimensions: int
    tokens_add_up: bool = False

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, special tokens included, without truncation."""

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        """``count_tokens`` of each of ``texts``."""
        return [self.count_tokens(text) for text in texts]

    @abstractmethod
    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Normalised float32 vectors of ``texts``, shape ``(len(texts), dimensions)``."""

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        *,
        normalize_embeddings: bool = True,
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """``embed`` under ``SentenceTransformer.encode``'s name, for code written against it.

        Only its default output is offered (normalised rows in a NumPy array); asking for
        anything else is an error rather than a silently different result.
        """
        if not (normalize_embeddings and convert_to_numpy):
            raise ValueError("embedding backends return normalised NumPy vectors only")
        return self.embed(list(texts), batch_size)


@dataclass(frozen=True)
class ModelLayout:
    """Where a sentence-transformers folder keeps its parts, and how it pools.

    Only the plain layout (Transformer → Pooling (mean or CLS) → optional Normalize) can run
    outside sentence-transformers; anything else, e.g. a Dense layer, needs the torch backend.
    """

    root: Path
    transformer_dir: Path
    max_seq_length: int
    dimensions: int
    pooling: str  # "mean" or "cls"

    @classmethod
    def read(cls, root: Path) -> ModelLayout:
        try:
            modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(f"{root} is not a sentence-transformers model folder: {exc}") from exc
        kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
        if kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
            raise EmbeddingModelError(
                f"the model in {root} has the modules {kinds}; only Transformer, Pooling and Normalize can run "
                "outside sentence-transformers: set EMBEDDING_BACKEND=torch for this model"
            )
        transformer_dir = root / modules[0]["path"]
        pooling_dir = root / modules[1]["path"]
        try:
            bert_config = json.loads((transformer_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
            pooling_config = json.loads((pooling_dir / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(f"cannot read the model configuration in {root}: {exc}") from exc
        modes = [key for key, value in pooling_config.items() if key.startswith("pooling_mode_") and value]
        if modes == ["pooling_mode_mean_tokens"]:
            pooling = "mean"
        elif modes == ["pooling_mode_cls_token"]:
            pooling = "cls"
        else:
            raise EmbeddingModelError(
                f"the model in {root} pools with {modes}; only mean or CLS pooling runs outside "
                "sentence-transformers: set EMBEDDING_BACKEND=torch for this model"
            )
        if not bert_config.get("max_seq_length"):
            raise EmbeddingModelError(f"the model in {root} does not state its max_seq_length")
        if not (transformer_dir / "tokenizer.json").is_file():
            raise EmbeddingModelError(
                f"the model in {root} has no tokenizer.json (a fast tokenizer); set EMBEDDING_BACKEND=torch"
            )
        return cls(
            root=root,
            transformer_dir=transformer_dir,
            max_seq_length=int(bert_config["max_seq_length"]),
            dimensions=int(pooling_config["word_embedding_dimension"]),
            pooling=pooling,
        )


class GraphBackend(Backend):
    """A backend that runs the exported transformer graph: tokenisation with the ``tokenizers``
    library and the model's ``tokenizer.json``, pooling and normalisation in NumPy — the same
    arithmetic as sentence-transformers' Pooling and Normalize modules. Subclasses run the
    graph on the batches (``_infer_all``) and say which inputs it takes (``input_names``)."""

    input_names: Sequence[str]

    def __init__(self, layout: ModelLayout) -> None:
        from tokenizers import Tokenizer

        self.layout = layout
        self.max_seq_length = layout.max_seq_length
        self.dimensions = layout.dimensions
        tokenizer_file = str(layout.transformer_dir / "tokenizer.json")
        # tokenizer.json may carry its own truncation and padding (MiniLM's: 128, fixed
        # padding); sentence-transformers overrides both, and so do we. One tokenizer counts
        # (never truncates), the other feeds the model (truncates like sentence-transformers).
        self._counter = Tokenizer.from_file(tokenizer_file)
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tokenizer = Tokenizer.from_file(tokenizer_file)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokens_add_up = tokens_add_up(self._counter)

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=True).ids)

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        # One call: the tokenizers library reads the texts on every core, without the GIL, and
        # its fast variant skips the character offsets nobody needs here.
        encodings = self._counter.encode_batch_fast(list(texts), add_special_tokens=True)
        return [len(encoding.ids) for encoding in encodings]

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import numpy as np

        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return vectors

        def store(rows: list[int], attention_mask: np.ndarray, hidden: np.ndarray) -> None:
            vectors[rows] = _pool(hidden.astype(np.float32, copy=False), attention_mask, self.layout.pooling)

        self._infer_all(self._batches(texts, batch_size), store)
        return vectors

    def _batches(self, texts: Sequence[str], batch_size: int) -> Iterator[tuple[list[int], dict, np.ndarray]]:
        """``(rows, feed, attention_mask)`` per batch of at most ``batch_size`` texts."""
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        # Longest first, as sentence-transformers does: each batch pads to its own longest text,
        # so texts of similar length share a batch and little is spent on padding.
        order = sorted(range(len(texts)), key=lambda index: -len(encodings[index].ids))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encodings[row].ids) for row in rows)
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            attention_mask = np.zeros((len(rows), width), dtype=np.int64)
            token_type_ids = np.zeros((len(rows), width), dtype=np.int64)
            for position, row in enumerate(rows):
                encoding = encodings[row]
                length = len(encoding.ids)
                input_ids[position, :length] = encoding.ids
                attention_mask[position, :length] = 1
                token_type_ids[position, :length] = encoding.type_ids
            available = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            yield rows, {name: available[name] for name in self.input_names}, attention_mask

    @abstractmethod
    def _infer_all(self, batches: Iterable[tuple[list[int], dict, np.ndarray]], store: Callable) -> None:
        """Run the graph on each ``(rows, feed, attention_mask)`` batch and call
        ``store(rows, attention_mask, hidden)`` with its last hidden state, shape
        ``(batch, tokens, dimensions)``; raise the first failure."""


def tokens_add_up(tokenizer: Tokenizer | dict) -> bool:
    """Whether ``tokenizer`` (a ``tokenizers.Tokenizer``, or its ``tokenizer.json`` read as a
    dict) tokenises text joined at white space as its parts one after the other: only the BERT
    recipe is trusted. Its normaliser works character by character (cleaning, lower-casing,
    accents, spaces around CJK characters), its pre-tokeniser splits at every white space (and
    punctuation) before WordPiece reads each word alone, and its special tokens are added the
    same way to any single text. Byte-level BPE (a space belongs to the next word) or
    SentencePiece (▁) fail this."""
    if not isinstance(tokenizer, dict):
        tokenizer = json.loads(tokenizer.to_str())
    normalizer = tokenizer.get("normalizer") or {"type": "BertNormalizer"}
    pre_tokenizer = tokenizer.get("pre_tokenizer") or {}
    post_processor = tokenizer.get("post_processor") or {}
    return (
        normalizer.get("type") == "BertNormalizer"
        and pre_tokenizer.get("type") == "BertPreTokenizer"
        and (tokenizer.get("model") or {}).get("type") == "WordPiece"
        and post_processor.get("type") in ("TemplateProcessing", "BertProcessing")
        # An added token is matched in the raw text before it is split: one holding white
        # space could span a join.
        and not any(re.search(r"\s", token.get("content", "")) for token in tokenizer.get("added_tokens") or [])
    )


def _pool(hidden: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
    """Pooled, L2-normalised sentence vectors (sentence-transformers' Pooling + Normalize)."""
    import numpy as np

    if pooling == "cls":
        pooled = hidden[:, 0, :]
    else:
        mask = attention_mask[:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.clip(norms, 1e-12, None)
