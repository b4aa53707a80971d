"""Hybrid retrieval over the chunks a user may read.

Contract: ``search(user, query, k)`` returns at most ``k`` ``Hit`` objects, best first, drawn
only from ``Chunk.objects.visible_to(user)``. Two candidate lists are fused by reciprocal rank
fusion (RRF):

- dense: cosine distance between the query's MiniLM embedding and each chunk's embedding,
  through the HNSW index — or an exact scan when the user can read few enough chunks that an
  approximate index filtered after the scan could come back short;
- full text: the question's lexemes OR-ed together (``'a' | 'b' | ...``) against the generated
  ``tsvector``, ranked with ``ts_rank``. AND-ing the words (``websearch_to_tsquery``) finds
  almost nothing for natural-language questions.

A relevance floor makes "nothing matches" honest: when no candidate's cosine similarity
reaches ``RETRIEVAL_MIN_SIMILARITY`` the result is empty, and the caller says the knowledge
base has no answer instead of letting the model invent one.

Raises nothing of its own; database errors propagate.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection, transaction
from django.db.models import F, Value
from pgvector.django import CosineDistance

from documents import embeddings
from documents.models import Chunk

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "text"]
Fusion = Literal["rrf", "convex"]
MAX_QUERY_CHARS = 2000
MAX_K = 50


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    document_id: uuid.UUID
    title: str
    location: str
    page: int | None
    text: str
    score: float
    similarity: float

    def as_dict(self) -> dict:
        return {
            "chunk": self.chunk_id,
            "document": str(self.document_id),
            "title": self.title,
            "location": self.location,
            "page": self.page,
            "text": self.text,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 4),
        }


@dataclass
class _Candidate:
    chunk: Chunk
    similarity: float
    dense_rank: int | None = None
    text_rank: int | None = None
    text_score: float = 0.0
    fused: float = 0.0


def search(
    user,
    query: str,
    k: int | None = None,
    *,
    mode: Mode = "hybrid",
    candidates: int | None = None,
    apply_floor: bool = True,
    fusion: Fusion | None = None,
) -> list[Hit]:
    """The ``k`` best chunks for ``query`` among those ``user`` may read (see module doc)."""
    query = (query or "").strip()[:MAX_QUERY_CHARS]
    k = min(max(1, k or settings.RETRIEVAL_K), MAX_K)
    if not query:
        return []
    pool = max(k, candidates or settings.RETRIEVAL_CANDIDATES)
    visible = Chunk.objects.visible_to(user)
    vector = embeddings.embed_query(query)
    found: dict[int, _Candidate] = {}
    if mode in ("hybrid", "dense"):
        for rank, chunk in enumerate(_dense(visible, vector, pool), start=1):
            found[chunk.pk] = _Candidate(chunk, 1.0 - chunk.distance, dense_rank=rank)
    if mode in ("hybrid", "text"):
        for rank, chunk in enumerate(_full_text(visible, vector, query, pool), start=1):
            entry = found.setdefault(chunk.pk, _Candidate(chunk, 1.0 - chunk.distance))
            entry.text_rank = rank
            entry.text_score = float(chunk.rank)
    if not found:
        return []
    if apply_floor and max(c.similarity for c in found.values()) < settings.RETRIEVAL_MIN_SIMILARITY:
        log.info("no chunk reaches the relevance floor for a %d-character query", len(query))
        return []
    _fuse(list(found.values()), fusion or settings.RETRIEVAL_FUSION)
    ranked = sorted(found.values(), key=lambda c: (-c.fused, -c.similarity, c.chunk.pk))
    if apply_floor:
        # Keep weak neighbours out of the prompt: a passage far below the floor only
        # distracts a small model.
        weakest = settings.RETRIEVAL_MIN_SIMILARITY / 2
        ranked = [c for c in ranked if c.similarity >= weakest]
    return [_hit(entry) for entry in ranked[:k]]


def _fuse(entries: list[_Candidate], fusion: Fusion) -> None:
    """Give every candidate its fused score.

    ``rrf``: reciprocal rank fusion, ``w_dense / (K + dense rank) + w_text / (K + text rank)``.
    ``convex``: ``w_dense * cosine similarity + w_text * ts_rank / best ts_rank``. Every
    candidate's cosine similarity is known exactly (the full-text query computes it too), so
    the dense side has no missing values, and the text side is scaled to [0, 1] per query.
    """
    dense_w, text_w = settings.RETRIEVAL_DENSE_WEIGHT, settings.RETRIEVAL_TEXT_WEIGHT
    if fusion == "rrf":
        rrf_k = settings.RETRIEVAL_RRF_K
        for entry in entries:
            entry.fused = 0.0
            if entry.dense_rank is not None:
                entry.fused += dense_w / (rrf_k + entry.dense_rank)
            if entry.text_rank is not None:
                entry.fused += text_w / (rrf_k + entry.text_rank)
        return
    best_text = max((e.text_score for e in entries), default=0.0) or 1.0
    for entry in entries:
        entry.fused = dense_w * entry.similarity + text_w * entry.text_score / best_text


def _hit(entry: _Candidate) -> Hit:
    chunk = entry.chunk
    return Hit(
        chunk_id=chunk.pk,
        document_id=chunk.document.public_id,
        title=chunk.document.title,
        location=chunk.location,
        page=chunk.page,
        text=chunk.text,
        score=entry.fused,
        similarity=entry.similarity,
    )


def _dense(visible, vector, pool: int) -> list[Chunk]:
    """Nearest chunks by cosine distance.

    The HNSW index is approximate and the access filter is applied after it, so a user who
    can read a small share of all chunks would get few or no rows from it. When the readable
    set is small (``RETRIEVAL_EXACT_SCAN_MAX``) we scan it exactly; otherwise we widen
    ``hnsw.ef_search`` by the inverse of the readable share, and fall back to the exact scan
    if the index still comes back short.
    """
    readable = visible.count()
    if readable == 0:
        return []
    wanted = min(pool, readable)
    base = visible.select_related("document").annotate(distance=CosineDistance("embedding", vector))
    if readable <= settings.RETRIEVAL_EXACT_SCAN_MAX:
        return _exact(base, wanted)
    total = Chunk.objects.count() or readable
    share = readable / total
    ef_search = min(1000, max(settings.RETRIEVAL_EF_SEARCH, int(wanted / share) + wanted))
    with transaction.atomic(), connection.cursor() as cursor:
        # SET LOCAL lasts until the end of this transaction only.
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef_search])
        rows = list(base.order_by("distance")[:wanted])
    if len(rows) < wanted:
        log.info("HNSW returned %d of %d rows for a %.1f%% readable share; exact scan", len(rows), wanted, share * 100)
        return _exact(base, wanted)
    return rows


def _exact(base, wanted: int) -> list[Chunk]:
    # Ordering by an expression the index does not serve ("distance + 0") makes Postgres
    # compute every readable distance instead of walking the approximate index.
    return list(base.order_by(F("distance") + Value(0.0))[:wanted])


def _full_text(visible, vector, query: str, pool: int) -> list[Chunk]:
    raw = _or_query(query)
    if not raw:
        return []
    tsquery = SearchQuery(raw, search_type="raw", config="simple")
    return list(
        visible.select_related("document")
        .filter(search_vector=tsquery)
        .annotate(
            rank=SearchRank(F("search_vector"), tsquery),
            distance=CosineDistance("embedding", vector),
        )
        .order_by("-rank", "pk")[:pool]
    )


def _or_query(query: str) -> str:
    """The query's English lexemes OR-ed as a raw tsquery, e.g. ``'vitamin' | 'defici'``.

    Lexemes come from Postgres itself (``to_tsvector('english', ...)``, the same config as the
    chunks' tsvector), so stemming and stop words match; they are matched with the 'simple'
    config so they are not stemmed twice.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", [query])
        lexemes = cursor.fetchone()[0] or []
    quoted = ["'" + lexeme.replace("'", "''").replace("\\", "\\\\") + "'" for lexeme in lexemes]
    return " | ".join(quoted)
