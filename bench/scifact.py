"""SciFact (BEIR): the product's search scored on a public, labelled retrieval set.

What is measured, and how:

- The data (``../shared/eval/scifact``, or ``SCIFACT_DIR``) is checked against its
  ``SHA256SUMS`` first; a mismatch stops the part. The data is read in place, never copied.
- Each of the 5,183 abstracts becomes one document through the product's own pipeline: a
  plain-text file ``title`` + blank line + ``text`` uploaded with
  ``documents.services.upload_document`` (validation, type sniffing, storage, generation
  bump), then ``documents.tasks.ingest_document`` run in this process (extraction, token-aware
  chunking, MiniLM embedding in batches, bulk insert). Only the HTTP hop and the queue are
  skipped: ``--part ingestion`` measures those. The corpus ``_id`` is kept in the file name
  (``scifact-<_id>.txt`` → ``Document.original_name``).
- The 300 test queries go through ``documents.retrieval.search`` as a staff user (staff read
  every document) with ``apply_floor=False``. A long abstract is several chunks, so chunk hits
  are collapsed to documents by their best chunk before scoring (the BEIR convention).
- ``search`` ranks within a candidate pool of ``max(k, candidates)`` chunks per side and caps
  ``k`` at ``retrieval.MAX_K`` (an API limit). The bench raises that cap and asks for ``k`` =
  pool, so the ranking it scores is exactly the product's ranking for that pool size. The
  product's pool is ``RETRIEVAL_CANDIDATES``; dense-only and text-only rankings do not depend
  on the pool, hybrid ones do. Recall@100 needs 100 distinct documents, so it is reported only
  for runs whose pool yields that many (the deep runs).
- A query's embedding is computed once and reused across configurations (the same vector
  each time; embedding cost is not part of these figures).

``--reuse`` keeps the ``kb_bench_scifact`` database between runs when it was built from the
same corpus bytes by the same ingestion code, model and chunk settings (a fingerprint over
those is stored in the database); anything else triggers a fresh ingest.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

from bench import metrics
from bench.common import BASE_DIR, connect, database_exists, progress, recreate_database, say

DATA_DIR = Path(os.environ.get("SCIFACT_DIR", BASE_DIR.parent / "shared" / "eval" / "scifact"))
OWNER = "bench-scifact"
FILE_PREFIX = "scifact-"
KEEP_DATABASE = True  # for --reuse: the corpus takes minutes to embed
# Bump when document_bytes() or the upload arguments change: a reused corpus must match.
CORPUS_FORMAT = "title, blank line, text; shared; staff owner; v1"
# Settings a run may change through the environment to be reported as a variant.
VARIANT_SETTINGS = ("RETRIEVAL_TEXT_MAX_ROWS",)
DEEP_POOL = 300  # chunks per side: enough for 100 distinct documents (about 2 chunks each)

# Published reference numbers, from the data set's README (test split).
REFERENCES = [
    {"system": "all-MiniLM-L6-v2, dense, cosine", "ndcg@10": 0.645, "recall@100": 0.925, "source": "MTEB paper"},
    {"system": "BM25 flat (Anserini)", "ndcg@10": 0.679, "recall@100": 0.925, "source": "Anserini BEIR v1.0.0"},
    {"system": "BM25 multifield (Anserini)", "ndcg@10": 0.665, "recall@100": 0.908, "source": "Anserini BEIR v1.0.0"},
]

# The ingestion code and settings whose change makes a stored corpus stale.
_PIPELINE_FILES = [
    "documents/services.py",
    "documents/tasks.py",
    "documents/extraction/__init__.py",
    "documents/extraction/common.py",
    "documents/extraction/docx.py",
    "documents/extraction/html.py",
    "documents/extraction/markdown.py",
    "documents/extraction/pdf.py",
    "documents/extraction/text.py",
    "documents/filetypes.py",
    "documents/chunking.py",
    "documents/embeddings.py",
    "documents/embedding_backends/base.py",
    "documents/embedding_backends/artifact.py",
    "documents/embedding_backends/torch.py",
    "documents/embedding_backends/onnx.py",
    "documents/embedding_backends/openvino.py",
    "documents/models.py",
]
_PIPELINE_SETTINGS = [
    "EMBEDDING_MODEL",
    "EMBEDDING_BACKEND",
    "EMBEDDING_BATCH_SIZE",
    "CHUNK_MAX_TOKENS",
    "CHUNK_OVERLAP_TOKENS",
]


class ChecksumMismatch(RuntimeError):
    pass


def verify_checksums(data_dir: Path = DATA_DIR) -> dict[str, str]:
    """Check every file listed in ``SHA256SUMS``; return ``{file: sha256}``. Raises
    ``ChecksumMismatch`` naming the first file that is missing or differs."""
    sums_file = data_dir / "SHA256SUMS"
    if not sums_file.is_file():
        raise ChecksumMismatch(f"{sums_file} is missing: is the SciFact data at {data_dir}? (set SCIFACT_DIR)")
    checked = {}
    for line in sums_file.read_text().splitlines():
        if not line.strip():
            continue
        expected, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        path = data_dir / name
        if not path.is_file():
            raise ChecksumMismatch(f"{path} is listed in SHA256SUMS but missing")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise ChecksumMismatch(f"{path}: sha256 {digest} differs from SHA256SUMS ({expected})")
        checked[name] = digest
    return checked


def load_data(
    data_dir: Path = DATA_DIR, split: str = "test"
) -> tuple[list[dict], dict[str, str], dict[str, dict[str, float]]]:
    """``(corpus, queries {id: text}, qrels {query id: {corpus id: gain}})`` of one split."""
    with open(data_dir / "corpus.jsonl", encoding="utf-8") as corpus_file:
        corpus = [json.loads(line) for line in corpus_file if line.strip()]
    qrels: dict[str, dict[str, float]] = {}
    with open(data_dir / "qrels" / f"{split}.tsv", encoding="utf-8") as qrels_file:
        next(qrels_file)  # header
        for line in qrels_file:
            if line.strip():
                query_id, corpus_id, score = line.rstrip("\n").split("\t")
                qrels.setdefault(query_id, {})[corpus_id] = float(score)
    queries = {}
    with open(data_dir / "queries.jsonl", encoding="utf-8") as queries_file:
        for line in queries_file:
            if line.strip():
                query = json.loads(line)
                if query["_id"] in qrels:
                    queries[query["_id"]] = query["text"]
    return corpus, queries, qrels


def document_bytes(entry: dict) -> bytes:
    """The plain-text file uploaded for one corpus entry: title, blank line, abstract."""
    return f"{entry['title'].strip()}\n\n{entry['text'].strip()}\n".encode()


def fingerprint(checksums: dict[str, str]) -> str:
    digest = hashlib.sha256()
    digest.update(checksums["corpus.jsonl"].encode())
    for name in _PIPELINE_FILES:
        digest.update(name.encode())
        digest.update((BASE_DIR / name).read_bytes())
    for path in sorted((BASE_DIR / "documents" / "migrations").glob("*.py")):
        digest.update(path.name.encode())
    for name in _PIPELINE_SETTINGS:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    digest.update(CORPUS_FORMAT.encode())
    return digest.hexdigest()


def _stored_fingerprint(database_url: str) -> str | None:
    import psycopg

    try:
        with connect(database_url) as conn:
            row = conn.execute("SELECT value FROM bench_meta WHERE key = 'scifact'").fetchone()
    except psycopg.Error:
        return None
    return json.loads(row[0])["fingerprint"] if row else None


def prepare(database_url: str, options) -> dict:
    """Before Django starts: check the data, then keep or recreate the database."""
    checksums = verify_checksums()
    wanted = fingerprint(checksums)
    reused = bool(options.reuse and database_exists(database_url) and _stored_fingerprint(database_url) == wanted)
    if not reused:
        recreate_database(database_url)
    return {"checksums": checksums, "fingerprint": wanted, "reused": reused}


def run(options, prepared: dict) -> dict:
    from django.conf import settings
    from django.db import connection

    corpus, queries, qrels = load_data(split=options.split)
    result: dict = {
        "split": options.split,
        "data": {
            "dir": str(DATA_DIR),
            "sha256_verified": sorted(prepared["checksums"]),
            "documents": len(corpus),
            "queries": len(queries),
            "judgments": sum(len(v) for v in qrels.values()),
        },
        "references": REFERENCES,
    }
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text NOT NULL)")
        cursor.execute("SELECT value FROM bench_meta WHERE key = 'scifact'")
        row = cursor.fetchone()
    if prepared["reused"] and row:
        ingest = json.loads(row[0])["ingest"]
        ingest["reused"] = True
        _check_corpus_complete(len(corpus))
    else:
        ingest = ingest_corpus(corpus)
        ingest["reused"] = False
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_meta (key, value) VALUES ('scifact', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                [json.dumps({"fingerprint": prepared["fingerprint"], "ingest": ingest})],
            )
    result["ingest"] = ingest
    result["settings"] = {
        name: getattr(settings, name)
        for name in (
            "RETRIEVAL_FUSION",
            "RETRIEVAL_CANDIDATES",
            "RETRIEVAL_RRF_K",
            "RETRIEVAL_DENSE_WEIGHT",
            "RETRIEVAL_TEXT_WEIGHT",
            "RETRIEVAL_EXACT_SCAN_MAX",
            "RETRIEVAL_EF_SEARCH",
        )
    }
    chosen = configurations(settings, quick=options.quick)
    if options.split == "train":
        # The train split shows what the weights were chosen on: the product's settings and the
        # convex text-weight sweep (810 queries; the full sweep would take half an hour here).
        chosen = [run for run in chosen if run.get("role") == "product" or run["name"].startswith("convex")]
    runs = evaluate_configurations(queries, qrels, chosen)
    _compare_with_product(runs)
    result["runs"] = runs
    result["query_ids"] = sorted(queries)
    result["best_hybrid"] = _best_hybrid(runs)
    # A run with other search settings (shown beside the default's in the report).
    result["variant"] = {name: os.environ[name] for name in VARIANT_SETTINGS if name in os.environ}
    return result


def _compare_with_product(runs: list[dict]) -> None:
    """Add each run's paired difference in nDCG@10 against the product's settings, with a 95 %
    bootstrap interval over the queries: an interval that straddles 0 is not a real gain."""
    product = next(run for run in runs if run.get("role") == "product")
    for run in runs:
        if run is product:
            continue
        delta = metrics.paired_bootstrap(run["ndcg@10_per_query"], product["ndcg@10_per_query"])
        run["delta_ndcg@10_vs_product"] = {key: round(value, 4) for key, value in delta.items()}


def _check_corpus_complete(expected: int) -> None:
    from documents.models import Document, Status

    ready = Document.objects.filter(owner__username=OWNER, status=Status.READY).count()
    if ready != expected:
        raise RuntimeError(
            f"the reused database holds {ready} ready SciFact documents, expected {expected}: run without --reuse"
        )


def ingest_corpus(corpus: list[dict]) -> dict:
    """Upload every abstract and ingest it in this process; return counts and timings."""
    from django.contrib.auth.models import User
    from django.db import connection

    from documents import embeddings, services, tasks
    from documents.models import Chunk, Document, Status, Visibility

    owner = User.objects.create_user(OWNER, is_staff=True, is_superuser=True)
    embeddings.get_model()  # load once, outside the timings
    upload_seconds = ingest_seconds = 0.0
    start = time.perf_counter()
    # The queue hand-off is replaced by a direct call: the task itself runs unchanged.
    with mock.patch.object(services, "request_ingestion", lambda: None):
        for entry in progress(corpus, desc="scifact: upload + ingest", unit="doc"):
            tick = time.perf_counter()
            document, created = services.upload_document(
                owner,
                file_name=f"{FILE_PREFIX}{entry['_id']}.txt",
                data=document_bytes(entry),
                title=entry["title"].strip()[:300] or entry["_id"],
                visibility=Visibility.SHARED,
            )
            if not created:
                raise RuntimeError(f"corpus entry {entry['_id']} duplicates another one's bytes")
            tock = time.perf_counter()
            tasks.ingest_document(document.pk, document.ingest_generation)
            upload_seconds += tock - tick
            ingest_seconds += time.perf_counter() - tock
    total = time.perf_counter() - start
    failed = list(Document.objects.exclude(status=Status.READY).values_list("original_name", "error")[:5])
    if failed:
        raise RuntimeError(f"some SciFact documents failed to ingest, e.g. {failed}")
    chunks = Chunk.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh statistics, as autovacuum would give a long-lived site
    return {
        "path": "upload_document + ingest_document in-process (no HTTP, no queue)",
        "documents": len(corpus),
        "chunks": chunks,
        "chunks_per_document": round(chunks / len(corpus), 3),
        "seconds": round(total, 1),
        "upload_seconds": round(upload_seconds, 1),
        "ingest_seconds": round(ingest_seconds, 1),
        "chunks_per_second": round(chunks / total, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


PLAIN_RRF = {"RETRIEVAL_RRF_K": 60, "RETRIEVAL_DENSE_WEIGHT": 1.0, "RETRIEVAL_TEXT_WEIGHT": 1.0}


def configurations(settings, *, quick: bool = False) -> list[dict]:
    """The runs to score: the product's modes first, then a sweep of hybrid fusion settings.

    Each run: ``name``, ``mode``, ``fusion``, ``pool`` (chunks per side), ``overrides``
    (settings), ``group`` (``modes`` or ``sweep``). Sweep runs spell out every weight they
    rely on, so they mean the same whatever the product's defaults are; one identical to the
    product's own settings is left out (it is the ``hybrid, product settings`` row).
    """
    pool = settings.RETRIEVAL_CANDIDATES
    fusion = settings.RETRIEVAL_FUSION
    product_name = (
        f"hybrid, product settings ({fusion}"
        + (f" K={settings.RETRIEVAL_RRF_K}" if fusion == "rrf" else "")
        + f", w_dense={settings.RETRIEVAL_DENSE_WEIGHT:g} w_text={settings.RETRIEVAL_TEXT_WEIGHT:g})"
    )
    runs = [
        _run("dense", "dense", None, DEEP_POOL, {}, "modes"),
        _run("full text", "text", None, DEEP_POOL, {}, "modes"),
        {**_run(product_name, "hybrid", None, pool, {}, "modes"), "role": "product"},
        _run("hybrid, product settings, deep pool", "hybrid", None, DEEP_POOL, {}, "modes"),
        _run("hybrid, plain rrf (K=60, w 1/1)", "hybrid", "rrf", pool, PLAIN_RRF, "modes"),
    ]
    if quick:
        return runs

    def is_product(run_fusion: str, overrides: dict, run_pool: int) -> bool:
        keys = ["RETRIEVAL_DENSE_WEIGHT", "RETRIEVAL_TEXT_WEIGHT"] + (
            ["RETRIEVAL_RRF_K"] if run_fusion == "rrf" else []
        )
        return (
            run_fusion == fusion
            and run_pool == pool
            and all(overrides.get(key, getattr(settings, key)) == getattr(settings, key) for key in keys)
        )

    sweep = []
    for rrf_k in (10, 60):
        for dense_w in (1.0, 1.5, 2.0):
            overrides = {"RETRIEVAL_RRF_K": rrf_k, "RETRIEVAL_DENSE_WEIGHT": dense_w, "RETRIEVAL_TEXT_WEIGHT": 1.0}
            if overrides != PLAIN_RRF:  # scored above
                sweep.append((f"rrf K={rrf_k} w_dense={dense_w:g}", "rrf", pool, overrides))
    for text_w in (0.1, 0.2, 0.3, 0.5, 1.0):
        overrides = {"RETRIEVAL_DENSE_WEIGHT": 1.0, "RETRIEVAL_TEXT_WEIGHT": text_w}
        sweep.append((f"convex w_dense=1 w_text={text_w:g}", "convex", pool, overrides))
    other_pool = 100 if pool != 100 else 50
    sweep.append((f"product settings, pool {other_pool}", fusion, other_pool, {}))
    sweep.append((f"plain rrf, pool {other_pool}", "rrf", other_pool, PLAIN_RRF))
    for name, run_fusion, run_pool, overrides in sweep:
        if not is_product(run_fusion, overrides, run_pool):
            runs.append(_run(name, "hybrid", run_fusion, run_pool, overrides, "sweep"))
    return runs


def _run(name: str, mode: str, fusion: str | None, pool: int, overrides: dict, group: str) -> dict:
    return {"name": name, "mode": mode, "fusion": fusion, "pool": pool, "overrides": overrides, "group": group}


def evaluate_configurations(queries: dict[str, str], qrels: dict, runs: list[dict]) -> list[dict]:
    from django.contrib.auth.models import User
    from django.test import override_settings

    from documents import embeddings, retrieval
    from documents.models import Document

    user = User.objects.get(username=OWNER)
    assert user.is_superuser  # reads every document
    corpus_id = {
        public_id: name.removeprefix(FILE_PREFIX).removesuffix(".txt")
        for public_id, name in Document.objects.values_list("public_id", "original_name")
    }
    results = []
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(retrieval, "MAX_K", max(DEEP_POOL, retrieval.MAX_K)))
        # Each query is embedded once, up front, and handed to every run (search(..., vector=)).
        vectors = {
            query_id: embeddings.embed_query(text)
            for query_id, text in progress(queries.items(), desc="scifact: embed queries", unit="query")
        }
        for run in runs:
            rankings: dict[str, list[str]] = {}
            latencies = []
            documents_returned = []
            with override_settings(**run["overrides"]):
                for query_id, text in progress(queries.items(), desc=f"scifact: {run['name']}", unit="query"):
                    tick = time.perf_counter()
                    hits = retrieval.search(
                        user,
                        text,
                        run["pool"],
                        mode=run["mode"],
                        candidates=run["pool"],
                        apply_floor=False,
                        fusion=run["fusion"],
                        vector=vectors[query_id],
                    )
                    latencies.append(time.perf_counter() - tick)
                    rankings[query_id] = metrics.collapse(corpus_id[hit.document_id] for hit in hits)
                    documents_returned.append(len(rankings[query_id]))
            scores = metrics.evaluate(rankings, qrels)
            per_query = [round(metrics.ndcg_at_k(rankings.get(q, []), qrels[q], 10), 4) for q in sorted(queries)]
            enough_for_100 = metrics.percentile(documents_returned, 5) >= 100
            if not enough_for_100:
                scores["recall@100"] = None
            results.append(
                {
                    **run,
                    **{name: (round(value, 4) if value is not None else None) for name, value in scores.items()},
                    "documents_returned_median": metrics.median(documents_returned),
                    "search_ms_p50": round(metrics.median(latencies) * 1000, 1),
                    "ndcg@10_per_query": per_query,
                }
            )
            say(f"scifact {run['name']}: nDCG@10 {scores['ndcg@10']:.4f}")
    return results


def _best_hybrid(runs: list[dict]) -> dict | None:
    hybrid = [run for run in runs if run["mode"] == "hybrid"]
    return max(hybrid, key=lambda run: run["ndcg@10"]) if hybrid else None
