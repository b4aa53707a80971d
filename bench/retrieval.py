"""Retrieval latency and recall at scale: REAL TEXT with SYNTHETIC vectors.

What is measured, and how:

- Chunk texts are real English: SciFact's abstracts (title and text) cut into windows of
  ``WINDOW_WORDS`` words, cycled to fill each scale step (a 10× larger corpus of the same
  domain: every word's document frequency grows 10×). Pseudo-words made full-text search look
  ten times cheaper than it is on real text. Vectors are synthetic, because a million real
  embeddings would take hours to compute here: 384-d unit vectors around 1,000 random centres,
  each cluster spread along its own random ``INTRINSIC``-dimensional subspace, with a little
  noise in every dimension. Real embeddings lie near such low-dimensional pieces, which is
  what makes a graph index work on them; the local intrinsic dimensionality (LID, the
  Levina–Bickel estimate over each query's 20 nearest neighbours) of each step is reported
  beside that of the real MiniLM embeddings of the same windows for the SciFact claims. Each
  query's true neighbours are distinct points, so recall@10 is well defined: copies of real
  embeddings would be near-duplicates, and clusters of noise in all 384 dimensions (this
  benchmark's earlier data) put a thousand points almost equally near each query (an LID of
  about 94 at a million points, where the HNSW index's recall@10 was 0.645). They are written
  with one binary ``COPY`` into the chunks of 149 ready documents per scale step, whose
  full-text statistics the database triggers keep as they would for ingestion; the HNSW index
  (the migration's own definition) is dropped for the load and built afterwards, and the
  build time is reported.
- Three readers: a staff user, who reads every chunk; a user who reads only their own
  documents, 1 % of the chunks (everything else is private to another owner), spread over
  50 documents per scale step; and the staff user searching only a collection that holds
  exactly those documents (a scope, ``retrieval.search(..., scope=...)``): 100 documents at
  the second step.
- Per scale and reader, over the same queries (further draws from the same distribution, not
  stored):
  ``retrieval.dense(visible, vector, 10)`` with the product's settings (it picks the HNSW
  path or an exact scan, see its docstring), the same with the HNSW path forced
  (``RETRIEVAL_EXACT_SCAN_MAX=0``), and an exact scan (``retrieval.exact``) as the baseline:
  p50/p95 latency and recall@10 against a brute-force NumPy top 10 of the chunks that reader
  may read. ``retrieval.search(user, text, 10)`` (hybrid, the whole product call) is timed too
  with the synthetic query vector given as its embedding and a SciFact test claim as its
  text, and so are its two halves alone (``mode="dense"``, ``mode="text"``); the embedding's
  own cost is measured separately on real text.
"""

from __future__ import annotations

import hashlib
import time
from unittest import mock

import numpy as np

from bench import metrics
from bench.common import progress, say

DIMENSIONS = 384
CENTRES = 1000
# Each cluster's points vary along this many dimensions (plus NOISE in all of them): at a million
# points this gives an LID near that of real MiniLM embeddings (reported side by side).
INTRINSIC = 32
SPREAD = 0.25
NOISE = 0.01
LID_NEIGHBOURS = 20
DOCUMENTS_PER_STEP = 100
# The 1 % reader's chunks are spread over this many documents per step; a collection holds them.
SMALL_DOCUMENTS_PER_STEP = 50
WINDOW_WORDS = 120
SEED = 20250101
K = 10


def run(options, prepared: dict) -> dict:
    from django.contrib.auth.models import User

    from bench import scifact
    from documents.models import Collection, Document, Scope

    scales = sorted({int(value) for value in options.scales.split(",") if value.strip()})
    queries = 20 if options.quick else 100
    rng = np.random.default_rng(SEED)
    shape = _Clusters(rng)
    scifact.verify_checksums()
    corpus, claims, _ = scifact.load_data()
    windows = _windows(corpus)
    claim_texts = list(claims.values())
    real_lid = _real_lid(windows, claim_texts)
    # Reads every document: a superuser (the staff flag alone reads only what is shared).
    staff = User.objects.create_user("bench-staff", is_staff=True, is_superuser=True)
    bulk_owner = User.objects.create_user("bench-bulk")
    small = User.objects.create_user("bench-one-percent")
    collection = Collection.objects.create(owner=staff, name="bench: the 1 % documents")
    stored = np.zeros((0, DIMENSIONS), dtype=np.float32)
    ids = np.zeros(0, dtype=np.int64)
    small_mask = np.zeros(0, dtype=bool)
    result = {
        "synthetic": True,
        "data": f"real text: SciFact's {len(corpus):,} abstracts cut into {len(windows):,} windows of up to "
        f"{WINDOW_WORDS} words, cycled; vectors (SYNTHETIC): {DIMENSIONS}-d unit vectors around {CENTRES} random "
        f"centres, each cluster spread along its own random {INTRINSIC}-dimensional subspace (σ {SPREAD}) with "
        f"noise σ {NOISE} in every dimension; queries: SciFact test claims as text, further draws from the same "
        "distribution (not stored) as vectors",
        "real_lid": real_lid,
        "queries_per_measurement": queries,
        "scales": [],
    }
    embed_ms = _embedding_cost(rng, 10 if options.quick else 50)
    result["query_embedding_ms_p50"] = embed_ms
    for scale in scales:
        added = scale - len(stored)
        if added <= 0:
            continue
        step = {"chunks": scale}
        vectors = shape.draw(added)
        small_count = scale // 100 - int(small_mask.sum())
        with _without_hnsw_index() as build:
            load_seconds, new_ids = _load(windows, vectors, bulk_owner, small, small_count, len(stored))
        step["load_seconds"] = round(load_seconds, 1)
        step["hnsw_build_seconds"] = round(build["seconds"], 1)
        stored = np.vstack([stored, vectors])
        ids = np.concatenate([ids, new_ids])
        small_mask = np.concatenate([small_mask, np.arange(added) < small_count])
        say(f"retrieval: {scale} chunks loaded in {load_seconds:.0f} s, HNSW built in {build['seconds']:.0f} s")
        query_vectors = shape.draw(queries)
        step["lid"] = _lid(stored, query_vectors)
        texts = [claim_texts[i % len(claim_texts)] for i in range(queries)]
        collection.documents.set(Document.objects.filter(owner=small))
        in_collection = f"staff, one collection of {collection.documents.count()} documents (1 %)"
        step["readers"] = {}
        for label, user, mask, scope in (
            ("staff (reads 100 %)", staff, np.ones(len(stored), dtype=bool), None),
            ("one user (reads 1 %)", small, small_mask, None),
            (in_collection, staff, small_mask, Scope(collection=collection)),
        ):
            truth = _brute_force(stored[mask], ids[mask], query_vectors)
            step["readers"][label] = _measure(user, query_vectors, texts, truth, scale, scope)
        result["scales"].append(step)
    return result


def _unit(array: np.ndarray) -> np.ndarray:
    return (array / np.linalg.norm(array, axis=1, keepdims=True)).astype(np.float32)


class _Clusters:
    """The synthetic vectors' distribution (see the module docstring)."""

    def __init__(self, rng) -> None:
        self.rng = rng
        self.centres = _unit(rng.standard_normal((CENTRES, DIMENSIONS), dtype=np.float32))
        # An orthonormal basis per cluster: QR of a random matrix.
        self.bases = np.linalg.qr(rng.standard_normal((CENTRES, DIMENSIONS, INTRINSIC), dtype=np.float32))[0]

    def draw(self, count: int) -> np.ndarray:
        picks = self.rng.integers(0, CENTRES, size=count)
        spread = self.rng.standard_normal((count, INTRINSIC), dtype=np.float32) * SPREAD
        vectors = self.centres[picks] + self.rng.standard_normal((count, DIMENSIONS), dtype=np.float32) * NOISE
        for cluster in np.unique(picks):
            members = picks == cluster
            vectors[members] += spread[members] @ self.bases[cluster].T
        return _unit(vectors)


def _lid(vectors: np.ndarray, queries: np.ndarray) -> float:
    """Median Levina–Bickel estimate of the local intrinsic dimensionality around ``queries``,
    from their ``LID_NEIGHBOURS`` nearest ``vectors`` (unit vectors: distance from cosine)."""
    similarity = queries @ vectors.T
    nearest = np.partition(similarity, -LID_NEIGHBOURS, axis=1)[:, -LID_NEIGHBOURS:]
    similarity = np.sort(nearest, axis=1)[:, ::-1]
    distance = np.sqrt(np.maximum(2 - 2 * similarity, 1e-12))
    estimates = (LID_NEIGHBOURS - 1) / np.sum(np.log(distance[:, -1:] / distance[:, :-1]), axis=1)
    return round(float(np.median(estimates)), 1)


def _real_lid(windows: list[str], claims: list[str]) -> dict:
    """The LID of real MiniLM embeddings: the SciFact claims among the windows' embeddings."""
    from documents import embeddings

    tick = time.perf_counter()
    vectors = np.asarray(embeddings.embed_texts(windows, 32), dtype=np.float32)
    queries = np.asarray(embeddings.embed_texts(claims[:300], 32), dtype=np.float32)
    say(f"retrieval: real embeddings of {len(windows)} windows in {time.perf_counter() - tick:.0f} s")
    return {"vectors": len(vectors), "queries": len(queries), "lid": _lid(vectors, queries)}


def _windows(corpus: list[dict]) -> list[str]:
    """Each abstract (title, then text) cut into windows of at most ``WINDOW_WORDS`` words."""
    windows = []
    for entry in corpus:
        words = f"{entry['title'].strip()}. {entry['text'].strip()}".split()
        windows += [" ".join(words[i : i + WINDOW_WORDS]) for i in range(0, len(words), WINDOW_WORDS)]
    return windows


def _embedding_cost(rng, repeats: int) -> float:
    from documents import embeddings

    embeddings.get_model()
    timings = []
    for i in range(repeats):
        tick = time.perf_counter()
        embeddings.embed_query(f"How long are backups kept on server {i}?")
        timings.append(time.perf_counter() - tick)
    return round(metrics.median(timings) * 1000, 1)


class _without_hnsw_index:
    """Drop the HNSW index for a bulk load and build it again afterwards (timed)."""

    def __enter__(self) -> dict:
        from django.db import connection

        self.timing: dict = {}
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunk_embedding_hnsw'")
            self.definition = cursor.fetchone()[0]
            cursor.execute("DROP INDEX chunk_embedding_hnsw")
        return self.timing

    def __exit__(self, *exc_info) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            # The graph must fit in maintenance_work_mem or the build slows down many times.
            cursor.execute("SELECT count(*) FROM documents_chunk")
            chunks = cursor.fetchone()[0]
            # About 3 kB of graph per chunk (384 floats and the links); at least 1 GB.
            cursor.execute(f"SET maintenance_work_mem = '{max(1024, chunks * 3 // 1024)}MB'")
            tick = time.perf_counter()
            with progress(total=1, desc="retrieval: build HNSW index", unit="index") as bar:
                cursor.execute(self.definition)
                bar.update()
            self.timing["seconds"] = time.perf_counter() - tick
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute("ANALYZE")


def _load(windows, vectors, bulk_owner, small, small_count: int, offset: int) -> tuple[float, np.ndarray]:
    """COPY ``vectors`` into new ready documents: the first ``small_count`` chunks belong to
    ``SMALL_DOCUMENTS_PER_STEP`` documents of ``small``, the rest to ``DOCUMENTS_PER_STEP - 1``
    documents of ``bulk_owner``, all private. Returns (seconds, the new chunk ids in row order)."""
    from django.db import connection
    from pgvector.psycopg import register_vector

    from documents.models import Chunk, Document, Status, Visibility

    start = time.perf_counter()
    count = len(vectors)
    per_document = -(-(count - small_count) // (DOCUMENTS_PER_STEP - 1))
    per_small = -(-small_count // SMALL_DOCUMENTS_PER_STEP)
    owners = [small] * SMALL_DOCUMENTS_PER_STEP + [bulk_owner] * (DOCUMENTS_PER_STEP - 1)
    documents = []
    for index, owner in enumerate(owners):
        label = f"synthetic {offset}-{index}"
        documents.append(
            Document.objects.create(
                owner=owner,
                title=f"SYNTHETIC {label}",
                original_name=f"synthetic-{offset}-{index}.txt",
                mime_type="text/plain",
                size=0,
                sha256=hashlib.sha256(label.encode()).hexdigest(),
                visibility=Visibility.PRIVATE,
                status=Status.READY,
                embedding_model="synthetic",
            )
        )
    rows = []
    for row in range(count):
        if row < small_count:
            document, ordinal = documents[row // per_small], row % per_small
        else:
            position = row - small_count
            document = documents[SMALL_DOCUMENTS_PER_STEP + position // per_document]
            ordinal = position % per_document
        rows.append((document.pk, ordinal))
    connection.ensure_connection()
    raw = connection.connection
    register_vector(raw)
    table = Chunk._meta.db_table
    with raw.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(max(id), 0) FROM {table}")
        before = cursor.fetchone()[0]
        columns = "document_id, ordinal, text, token_count, location, embedding"
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int4", "text", "int4", "varchar", "vector"])
            chunks = progress(zip(rows, vectors, strict=True), total=count, desc="retrieval: COPY chunks", unit="chunk")
            for position, ((document_id, ordinal), vector) in enumerate(chunks):
                text = windows[(offset + position) % len(windows)]
                copy.write_row((document_id, ordinal, text, len(text.split()), "scifact", vector))
        # Ids come from a sequence, in the order the rows were copied.
        cursor.execute(f"SELECT id FROM {table} WHERE id > %s ORDER BY id", [before])
        new_ids = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    if len(new_ids) != count:
        raise RuntimeError(f"expected {count} new chunk ids, found {len(new_ids)}")
    return time.perf_counter() - start, new_ids


def _brute_force(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray) -> list[list[int]]:
    similarity = queries @ vectors.T
    top = np.argsort(-similarity, axis=1)[:, :K]
    return [ids[row].tolist() for row in top]


def _planner_uses_hnsw(base, vector, readable: int) -> bool:
    """Whether Postgres walks the HNSW index for the query ``retrieval.dense`` sends on its index path.

    For a reader of a small share the planner may prefer the ``document_id`` index and sort the
    few readable rows exactly, which is both exact and fast: then "HNSW forced" is not HNSW.
    """
    from django.db import connection, transaction

    from documents.models import Chunk

    total = max(readable, Chunk.objects.estimated_count())
    ef_search = min(1000, max(100, int(K / (readable / total)) + K))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef_search])
        plan = base.nearest(vector)[:K].explain()
    return "chunk_embedding_hnsw" in plan


def _measure(user, query_vectors, texts, truth, scale: int, scope=None) -> dict:
    from django.test import override_settings

    from documents import retrieval
    from documents.models import Chunk

    readable = Chunk.objects.visible_to(user).in_scope(scope).count()
    total = Chunk.objects.count()
    # The reader's chunks as search() reads them: a reader of few has their documents listed.
    visible = Chunk.objects.visible_to(user, listed=retrieval.reads_few(readable, total)).in_scope(scope)
    figures: dict = {"readable_chunks": readable}
    exact_calls = {"count": 0}
    real_exact = retrieval.exact

    def counting_exact(*args, **kwargs):
        exact_calls["count"] += 1
        return real_exact(*args, **kwargs)

    def timed(name: str, call, *, settings: dict | None = None, check: bool = True) -> None:
        latencies, recalls = [], []
        exact_calls["count"] = 0
        with override_settings(**(settings or {})), mock.patch.object(retrieval, "exact", counting_exact):
            call(query_vectors[0], texts[0])  # warm-up: plans, caches
            exact_calls["count"] = 0
            for index in progress(range(len(query_vectors)), desc=f"retrieval {scale}: {name}", unit="query"):
                tick = time.perf_counter()
                found = call(query_vectors[index], texts[index])
                latencies.append(time.perf_counter() - tick)
                if check:
                    recalls.append(metrics.overlap_at_k([c.pk for c in found], truth[index], K))
        figures[name] = {
            "p50_ms": round(metrics.median(latencies) * 1000, 2),
            "p95_ms": round(metrics.percentile(latencies, 95) * 1000, 2),
        }
        if check:
            figures[name]["recall@10"] = round(sum(recalls) / len(recalls), 4)
        figures[name]["exact_scans"] = exact_calls["count"]

    def dense(vector, _text):
        return retrieval.dense(visible, vector, K, readable, total)  # as search() calls it

    def exact(vector, _text):
        return real_exact(visible, vector, K)

    def fixed(vector) -> dict:
        return {"apply_floor": False, "vector": vector, "scope": scope}

    def search(vector, text):
        return retrieval.search(user, text, K, **fixed(vector))

    figures["planner uses HNSW on the index path"] = _planner_uses_hnsw(visible, query_vectors[0], readable)
    timed("dense (product path)", dense)
    timed("dense (HNSW forced)", dense, settings={"RETRIEVAL_EXACT_SCAN_MAX": 0})
    timed("exact scan (baseline)", exact)
    timed("search (hybrid, embedding excluded)", search, check=False)
    timed("search: dense half", lambda v, t: retrieval.search(user, t, K, mode="dense", **fixed(v)), check=False)
    timed("search: full-text half", lambda v, t: retrieval.search(user, t, K, mode="text", **fixed(v)), check=False)
    product, baseline = figures["dense (product path)"], figures["exact scan (baseline)"]
    figures["dense speed-up vs exact (p50)"] = round(baseline["p50_ms"] / max(product["p50_ms"], 1e-6), 2)
    return figures
