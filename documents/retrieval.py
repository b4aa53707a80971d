"""Hybrid retrieval over the chunks a user may read.

Contract: ``search(user, query, k)`` returns at most ``k`` ``Hit`` objects, best first, drawn
only from ``Chunk.objects.visible_to(user)`` (narrowed further by a ``scope``: one collection or
one document). Two candidate lists are fused:

- dense: cosine distance between the query's MiniLM embedding and each chunk's embedding,
  through the HNSW index — or an exact scan when the user can read few enough chunks that an
  approximate index filtered after the scan could come back short;
- full text: chunks containing the question's rarer lexemes (OR-ed: AND-ing the words of a
  natural-language question finds almost nothing), scored by the inverse document frequency
  of all the question's lexemes they contain, so rare words weigh most. The frequencies are
  kept up to date by the database per reader (``documents.text_stats``), not counted per
  query, and the candidates are bounded: lexemes are taken rarest first while the chunks
  containing them number at most ``RETRIEVAL_TEXT_MAX_ROWS`` in all; a chunk sharing only
  common words with the question scores too little to matter, and scoring every one of them
  made the cost grow with the corpus (docs/benchmarks.md, "Retrieval at scale").

Fusion (``RETRIEVAL_FUSION``) is ``convex`` by default — cosine similarity plus
``RETRIEVAL_TEXT_WEIGHT`` times the per-query scaled text score — or reciprocal rank fusion
(``rrf``). The defaults were chosen on SciFact's train queries and reported on its test
queries (docs/benchmarks.md).

A relevance floor makes "nothing matches" honest: when no candidate's cosine similarity
reaches ``RETRIEVAL_MIN_SIMILARITY`` the result is empty, and the caller says the knowledge
base has no answer instead of letting the model invent one.

``search(..., vector=v)`` takes a query embedding computed beforehand (the chat embeds in its
own executor); ``dense(visible, vector, k)`` is the dense side alone, as the product runs it,
and ``exact(visible, vector, k)`` the exact scan it falls back to.
Ranking SQL lives on ``ChunkQuerySet`` (``nearest``, ``matching``, ``ranked_by_lexemes``).

Raises nothing of its own; database errors propagate.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.db import connection, transaction
from pgvector.django import CosineDistance

from documents import embeddings
from documents.models import Chunk, LexemeCount, Scope, ScopeKind
from documents.text_stats import Frequencies

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "text"]
Fusion = Literal["rrf", "convex"]
MAX_QUERY_CHARS = 2000
MAX_K = 50
# Weight of ts_rank in the full-text score: only orders chunks whose matched words tie.
TIE_BREAK = 0.01
# Digits kept of scores in payloads: enough to order, not float noise.
SCORE_DIGITS = 4


def passage_payload(passage, *, document_id) -> dict:
    """The one JSON shape of a passage: a search result, a ``sources`` entry, a saved citation.

    ``passage`` has ``ordinal``, ``title``, ``location``, ``page``, ``text`` and ``score``.
    ``document`` is the document's public id (None once it is deleted) and ``ordinal`` the
    passage's position in it (the document page's ``#chunk-<ordinal>``): no database keys.
    """
    return {
        "document": str(document_id) if document_id else None,
        "ordinal": passage.ordinal,
        "title": passage.title,
        "location": passage.location,
        "page": passage.page,
        "text": passage.text,
        "score": round(float(passage.score), SCORE_DIGITS),
    }


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    document_id: uuid.UUID
    ordinal: int
    title: str
    location: str
    page: int | None
    text: str
    score: float
    similarity: float

    def as_dict(self) -> dict:
        """A search API result: the passage and its cosine similarity to the query."""
        return {
            **passage_payload(self, document_id=self.document_id),
            "similarity": round(self.similarity, SCORE_DIGITS),
        }

    def as_source(self, n: int, highlight: Sequence[dict] = ()) -> dict:
        """An entry of the websocket ``sources`` event: the passage numbered as the model sees it,
        with the sentences that answer the question (``chat.evidence``)."""
        return {"n": n, **passage_payload(self, document_id=self.document_id), "highlight": list(highlight)}


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
    vector=None,
    scope: Scope | None = None,
) -> list[Hit]:
    """The ``k`` best chunks for ``query`` among those ``user`` may read (see module doc).

    ``vector``: the query's embedding when the caller computed it already. ``scope``: only
    chunks of that collection or document (and still only those ``user`` may read); word
    frequencies and the relevance floor are then those of the scope.
    """
    query = (query or "").strip()[:MAX_QUERY_CHARS]
    k = min(max(1, k or settings.RETRIEVAL_K), MAX_K)
    if not query:
        return []
    pool = max(k, candidates or settings.RETRIEVAL_CANDIDATES)
    stats = LexemeCount.objects.frequencies(user, query if mode != "dense" else "")
    # A reader of few chunks (by the kept counts) or a scope: their documents listed, so their
    # chunks are read through the document index (see ChunkQuerySet.visible_to).
    visible = Chunk.objects.visible_to(user, listed=reads_few(stats.readable, stats.total)).in_scope(scope)
    stats = _scoped(stats, visible, scope)
    if stats.readable == 0:
        return []
    if vector is None:
        vector = embeddings.embed_query(query)
    found: dict[int, _Candidate] = {}
    if mode in ("hybrid", "dense"):
        for rank, chunk in enumerate(dense(visible, vector, pool, stats.readable, stats.total), start=1):
            found[chunk.pk] = _Candidate(chunk, 1.0 - chunk.distance, dense_rank=rank)
    if mode in ("hybrid", "text"):
        for rank, chunk in enumerate(_full_text(visible, stats, vector, pool), start=1):
            entry = found.setdefault(chunk.pk, _Candidate(chunk, 1.0 - chunk.distance))
            entry.text_rank = rank
            entry.text_score = float(chunk.text_score)
    if not found:
        return []
    if apply_floor and max(c.similarity for c in found.values()) < settings.RETRIEVAL_MIN_SIMILARITY:
        log.info("no chunk reaches the relevance floor for a %d-character query", len(query))
        return []
    if mode == "hybrid":
        _fuse(list(found.values()), fusion or settings.RETRIEVAL_FUSION)
    else:  # one list: its own score, so its own order
        for entry in found.values():
            entry.fused = entry.similarity if mode == "dense" else entry.text_score
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
    ``convex``: ``w_dense * cosine similarity + w_text * text score / best text score``.
    Every candidate's cosine similarity is known exactly (the full-text query computes it
    too), so the dense side has no missing values; the text side is scaled to [0, 1] per
    query, so its weight means the same for every question.
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
        ordinal=chunk.ordinal,
        title=chunk.document.title,
        location=chunk.location,
        page=chunk.page,
        text=chunk.text,
        score=entry.fused,
        similarity=entry.similarity,
    )


def dense(visible, vector, k: int, readable: int | None = None, total: int | None = None) -> list[Chunk]:
    """The ``k`` chunks of ``visible`` nearest to ``vector``, each with its ``distance``.

    The HNSW index is approximate and the access filter is applied after it, so a user who
    can read a small share of all chunks would get few or no rows from it. Such a user's
    readable set is scanned exactly when it is small enough (``RETRIEVAL_EXACT_SCAN_MAX``);
    otherwise the index is asked for more candidates (``hnsw.ef_search`` widened by the
    inverse of the readable share), with the exact scan as the fallback when it still comes
    back short. A user who can read most chunks always takes the fast index path.
    ``readable`` and ``total`` (all chunks) are counted or estimated when not given.
    """
    if readable is None:
        readable = visible.count()
    if readable == 0:
        return []
    wanted = min(k, readable)
    total = max(readable, total if total is not None else Chunk.objects.estimated_count())
    if reads_few(readable, total):
        return exact(visible, vector, wanted)
    share = readable / total
    ef_search = min(1000, max(settings.RETRIEVAL_EF_SEARCH, int(wanted / share) + wanted))
    with transaction.atomic(), connection.cursor() as cursor:
        # SET LOCAL lasts until the end of this transaction only.
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef_search])
        rows = list(visible.nearest(vector)[:wanted])
    if len(rows) < wanted:
        log.info("HNSW returned %d of %d rows for a %.1f%% readable share; exact scan", len(rows), wanted, share * 100)
        return exact(visible, vector, wanted)
    return rows


def reads_few(readable: int, total: int) -> bool:
    """Whether a reader of ``readable`` of ``total`` chunks is served best by their own chunks:
    under half of them all, and at most ``RETRIEVAL_EXACT_SCAN_MAX`` (an exact scan of them
    beats an index filtered after its scan, which may come back short)."""
    return readable < total / 2 and readable <= settings.RETRIEVAL_EXACT_SCAN_MAX


def exact(visible, vector, k: int) -> list[Chunk]:
    """The ``k`` chunks of ``visible`` nearest to ``vector`` by an exact scan (no index)."""
    return list(visible.nearest(vector, exact=True)[:k])


def _scoped(kept: Frequencies, visible, scope: Scope | None) -> Frequencies:
    """The reader's figures: the kept ones, or within a scope (a collection or a document:
    small, and without statistics of its own) counted."""
    if scope is None or scope.kind == ScopeKind.ALL:
        return kept
    readable, counted = visible.lexeme_frequencies(kept.lexemes)
    # The scope's own chunks are what its full-text query reads (through the document index).
    return dataclasses.replace(kept, readable=readable, frequencies=counted, matches=counted)


def candidate_lexemes(stats: Frequencies) -> list[str]:
    """The lexemes whose chunks are the full-text candidates: the reader's rarest first, while
    the index entries they read (``stats.matches``) stay within ``RETRIEVAL_TEXT_MAX_ROWS``."""
    lexemes, chosen, rows = stats.lexemes, [], 0
    order = sorted(range(len(lexemes)), key=lambda i: (stats.frequencies[i], lexemes[i]))
    for i in order:
        if stats.frequencies[i] == 0:
            continue  # in nothing this reader may read
        if rows + stats.matches[i] > settings.RETRIEVAL_TEXT_MAX_ROWS:
            break
        chosen.append(lexemes[i])
        rows += stats.matches[i]
    return chosen


def _full_text(visible, stats: Frequencies, vector, pool: int) -> list[Chunk]:
    """Chunks sharing rare words with the query, best first by IDF-weighted word coverage.

    Each query lexeme a chunk contains adds that lexeme's inverse document frequency over
    the chunks this user may read (the BM25 form ``ln(1 + (N - df + 0.5) / (df + 0.5))``), so
    a rare word — a product code, a name — outweighs common ones; ``ts_rank`` breaks ties.
    Plain ``ts_rank`` over the OR-ed query knows nothing of rarity (docs/architecture.md).
    The frequencies are those of the user's own readable set, so other users' private words
    never shape the scores. Only chunks containing ``candidate_lexemes`` are scored.
    """
    among = candidate_lexemes(stats)
    if not among:
        return []
    weights = [idf(df, stats.readable) for df in stats.frequencies]
    ranked = visible.ranked_by_lexemes(stats.lexemes, weights, tie_break=TIE_BREAK, among=among)
    # Scores first, then the rows of the best ``pool`` alone: carrying every candidate's
    # document and cosine distance through the sort cost more than the scoring itself.
    best = list(ranked.values_list("pk", "text_score")[:pool])
    rows = Chunk.objects.filter(pk__in=[pk for pk, _ in best]).passages()
    found = {chunk.pk: chunk for chunk in rows.annotate(distance=CosineDistance("embedding", vector))}
    # A chunk re-indexed away between the two queries is left out.
    scored = [(found[pk], score) for pk, score in best if pk in found]
    for chunk, score in scored:
        chunk.text_score = score
    return [chunk for chunk, _ in scored]


def idf(df: int, readable: int) -> float:
    """BM25's inverse document frequency of a word found in ``df`` of ``readable`` chunks (0: absent)."""
    return math.log(1 + (readable - df + 0.5) / (df + 0.5)) if df else 0.0
