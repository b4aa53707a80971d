"""Embedding backends compared on the same weights: speed, agreement with torch, SciFact nDCG@10.

What is measured, and how (``make bench PART=backends``; ``--quick`` for a smoke run):

- Every backend of ``documents.embedding_backends`` (torch fp32, the reference; ONNX Runtime
  int8; OpenVINO bf16) loads the packaged all-MiniLM-L6-v2, the exported ones from the export
  ``manage.py build_embedding_model`` writes (built first if missing, outside the timings).
- **Speed**: texts/s embedding the first 500 SciFact abstracts (title, space, text; 100 with
  ``--quick``) in batches of ``EMBEDDING_BATCH_SIZE``, after a warm-up. The backends take
  turns, round after round (2 rounds; 1 with ``--quick``), and the median round counts, so a
  busy moment on this shared machine hits them alike; the ratio to torch is per round.
- **Agreement**: cosine similarity of each text's vector to torch's for the same text.
- **Retrieval quality**: exact dense retrieval (every abstract one vector, a full dot-product
  scan, no index, no full-text) on the SciFact test queries, nDCG@10 as in BEIR/MTEB, with a
  paired bootstrap interval of the difference to torch. ``--quick`` scores against the judged
  abstracts plus 500 others only, so its figures are not comparable with published ones.
- **Web process memory**: a fresh Python process per backend loads the ASGI application (as a
  daphne web process does), embeds one query, and reports its RSS and whether torch was imported.

SciFact is evaluation data (``../shared/eval/scifact`` or ``SCIFACT_DIR``), read in place and
checked against its ``SHA256SUMS``; nothing of it is shipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench import metrics
from bench.common import BASE_DIR, progress, say
from bench.scifact import DATA_DIR, load_data, verify_checksums

SPEED_TEXTS = 500
QUICK_SPEED_TEXTS = 100
QUICK_DISTRACTORS = 500

# Run in a fresh interpreter per backend: what a web process holds after its first query.
_WEB_PROCESS = """
import json, os, sys, time
import django
django.setup()
from kb_site.asgi import application  # noqa: F401  (everything a daphne web process imports)
from documents import embeddings
start = time.perf_counter()
embeddings.embed_query("Does vitamin D lower the risk of fractures?")
first = time.perf_counter() - start
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
seen = {"rss_mb": round(rss / 1024), "first_query_s": round(first, 2), "torch_imported": "torch" in sys.modules}
print(json.dumps(seen))
"""


def _text(entry: dict) -> str:
    return f"{entry['title']} {entry['text']}".strip()


def run(options, prepared: dict) -> dict:
    import numpy as np
    from django.conf import settings

    from documents import embedding_backends, embeddings

    checksums = verify_checksums(DATA_DIR)
    corpus, queries, qrels = load_data(DATA_DIR, "test")
    speed_texts = [_text(entry) for entry in corpus[: QUICK_SPEED_TEXTS if options.quick else SPEED_TEXTS]]
    if options.quick:
        judged = {doc for rels in qrels.values() for doc in rels}
        others = [entry for entry in corpus if entry["_id"] not in judged][:QUICK_DISTRACTORS]
        corpus = [entry for entry in corpus if entry["_id"] in judged] + others
    query_ids = sorted(query for query, rels in qrels.items() if any(gain > 0 for gain in rels.values()))
    batch_size = settings.EMBEDDING_BATCH_SIZE
    rounds = 1 if options.quick else 2

    loaded = {}
    for name in embedding_backends.BACKENDS:
        tick = time.perf_counter()
        loaded[name] = embedding_backends.load(name, embeddings.model_path(), settings.EMBEDDING_CACHE_DIR)
        loaded[name].embed(speed_texts[:batch_size], batch_size)  # warm-up: first-call allocations
        say(f"backends: {name} loaded in {time.perf_counter() - tick:.1f} s")

    seconds: dict[str, list[float]] = {name: [] for name in loaded}
    vectors: dict[str, np.ndarray] = {}
    for number in range(rounds):
        for name, backend in loaded.items():
            tick = time.perf_counter()
            vectors[name] = backend.embed(speed_texts, batch_size)
            seconds[name].append(time.perf_counter() - tick)
            say(f"backends: round {number + 1}, {name}: {len(speed_texts) / seconds[name][-1]:.1f} texts/s")

    corpus_ids = [entry["_id"] for entry in corpus]
    corpus_texts = [_text(entry) for entry in corpus]
    query_texts = [queries[query] for query in query_ids]
    scores: dict[str, list[float]] = {}
    results = []
    for name, backend in loaded.items():
        tick = time.perf_counter()
        documents = np.concatenate(
            [
                backend.embed(corpus_texts[start : start + 512], batch_size)
                for start in progress(range(0, len(corpus_texts), 512), desc=f"backends: SciFact corpus, {name}")
            ]
        )
        corpus_seconds = time.perf_counter() - tick
        found = backend.embed(query_texts, batch_size) @ documents.T
        rankings = {
            query: [corpus_ids[index] for index in np.argsort(-row)[:100]]
            for query, row in zip(query_ids, found, strict=True)
        }
        scores[name] = [metrics.ndcg_at_k(rankings[query], qrels[query], 10) for query in query_ids]
        evaluated = metrics.evaluate(rankings, {query: qrels[query] for query in query_ids})
        cosine = (vectors[name] * vectors["torch"]).sum(axis=1)
        ratios = [torch_seconds / own for torch_seconds, own in zip(seconds["torch"], seconds[name], strict=True)]
        results.append(
            {
                "backend": name,
                "model_name": f"{embeddings.PACKAGED_MODEL_NAME}@{name}-{embedding_backends.PRECISIONS[name]}",
                "texts_per_s": round(len(speed_texts) / metrics.median(seconds[name]), 1),
                "ratio_to_torch": round(metrics.median(ratios), 2),
                "corpus_texts_per_s": round(len(corpus_texts) / corpus_seconds, 1),
                "cosine_to_torch_min": round(float(cosine.min()), 4),
                "cosine_to_torch_mean": round(float(cosine.mean()), 5),
                "ndcg@10": round(evaluated["ndcg@10"], 4),
                "recall@100": round(evaluated["recall@100"], 4),
                "delta_ndcg@10_vs_torch": (
                    None if name == "torch" else metrics.paired_bootstrap(scores[name], scores["torch"])
                ),
            }
        )
        say(f"backends: {name}: nDCG@10 {evaluated['ndcg@10']:.4f}, corpus {len(corpus_texts) / corpus_seconds:.1f}/s")
    del loaded, vectors

    for entry in results:
        entry["web_process"] = _web_process(entry["backend"])
        say(f"backends: {entry['backend']} web process {entry['web_process']}")
    return {
        "data": {
            "sha256_verified": sorted(checksums),
            "speed_texts": len(speed_texts),
            "corpus": len(corpus_texts),
            "queries": len(query_ids),
            "subset": bool(options.quick),
        },
        "batch_size": batch_size,
        "rounds": rounds,
        "default_backend": settings.EMBEDDING_BACKEND,
        "backends": results,
    }


def _web_process(backend: str) -> dict:
    env = {**os.environ, "EMBEDDING_BACKEND": backend, "DJANGO_SETTINGS_MODULE": "kb_site.settings"}
    completed = subprocess.run(
        [sys.executable, "-c", _WEB_PROCESS], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600
    )
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed"}
    return json.loads(completed.stdout.strip().splitlines()[-1])
