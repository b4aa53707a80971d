"""Ingestion through the real path: HTTP API → queue → worker, against raw embedding.

What is measured, and how:

- A real daphne (``kb_site.asgi``) and a real ``manage.py qcluster`` run as subprocesses on
  loopback against the bench database, with production-like settings (``DEBUG`` off, tasks on
  the django-q2 ORM broker).
- The documents are plain-text files of SciFact abstracts (checksums verified; 20 abstracts,
  one per paragraph, per file), uploaded with ``POST /api/v1/documents/`` and a Bearer token.
  One small document is ingested first so the worker has loaded the model (that cold start
  is reported on its own).
- The timed documents go in rounds. Each round uploads its documents, waits until all are
  ``ready`` (end = the latest ``Document.ingested``), then reads their chunk texts back from
  the database and embeds exactly those texts with ``SentenceTransformer.encode`` at the same
  batch size (``EMBEDDING_BATCH_SIZE``) in this process, with nothing else of ours running.
  The pipeline/raw ratio of each round is paired in time, so load from other programs on the
  machine hits both sides alike; the median ratio is reported.
- Worker memory: psutil samples the qcluster process tree every 0.2 s; reported are the peak
  RSS of the largest process (the worker holding the model) and the peak sum over the tree
  (forked processes share pages, so the sum overstates).
"""

from __future__ import annotations

import sys
import threading
import time

from bench import metrics
from bench.common import (
    LOGS_DIR,
    free_port,
    progress,
    say,
    site_command,
    start_process,
    stop_process,
    wait_for_port,
)

ABSTRACTS_PER_DOCUMENT = 20


def run(options, prepared: dict) -> dict:
    import os

    import httpx
    from django.conf import settings
    from django.contrib.auth.models import User

    from accounts.services import create_api_token
    from bench import scifact

    scifact.verify_checksums()
    corpus, _, _ = scifact.load_data()
    rounds, per_round = (1, 3) if options.quick else (3, 8)
    files = _documents(corpus, rounds * per_round + 1)
    user = User.objects.create_user("bench-ingest")
    token = create_api_token(user, name="bench")
    port = free_port()
    env = dict(os.environ)
    logs = LOGS_DIR
    daphne = worker = None
    monitor = _TreeMemory()
    result: dict = {
        "path": "POST /api/v1/documents/ → django-q2 ORM broker → qcluster worker (ingest_document)",
        "batch_size": settings.EMBEDDING_BATCH_SIZE,
        "q_workers": settings.Q_CLUSTER["workers"],
        "rounds": [],
    }
    try:
        daphne = start_process(
            site_command(port),
            env=env,
            log_path=logs / "ingestion-daphne.log",
        )
        worker = start_process(
            [sys.executable, "manage.py", "qcluster"], env=env, log_path=logs / "ingestion-qcluster.log"
        )
        monitor.start(worker.pid)
        wait_for_port(port, timeout=60, process=daphne)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        with client:
            tick = time.time()
            warm = _upload(client, [files[0]])
            _wait_ready(warm, timeout=300)
            result["cold_start_seconds"] = round(_finished(warm) - tick, 1)
            say(f"ingestion: worker warm after {result['cold_start_seconds']} s")
            for number in range(rounds):
                batch = files[1 + number * per_round : 1 + (number + 1) * per_round]
                result["rounds"].append(_round(client, batch, settings.EMBEDDING_BATCH_SIZE, number + 1))
    finally:
        monitor.stop()
        stop_process(worker)
        stop_process(daphne)
    ratios = [entry["ratio"] for entry in result["rounds"]]
    chunks = sum(entry["chunks"] for entry in result["rounds"])
    result.update(
        documents=sum(entry["documents"] for entry in result["rounds"]),
        chunks=chunks,
        pipeline_chunks_per_second=round(chunks / sum(e["pipeline_seconds"] for e in result["rounds"]), 2),
        raw_chunks_per_second=round(chunks / sum(e["raw_seconds"] for e in result["rounds"]), 2),
        ratio_median=round(metrics.median(ratios), 3),
        worker_peak_rss_mb=round(monitor.peak_process / 2**20, 1),
        worker_tree_peak_rss_mb=round(monitor.peak_tree / 2**20, 1),
    )
    return result


def _documents(corpus: list[dict], count: int) -> list[tuple[str, bytes]]:
    files = []
    for number in range(count):
        entries = corpus[number * ABSTRACTS_PER_DOCUMENT : (number + 1) * ABSTRACTS_PER_DOCUMENT]
        text = "\n\n".join(f"{entry['title'].strip()}\n{entry['text'].strip()}" for entry in entries)
        files.append((f"abstracts-{number:03d}.txt", text.encode()))
    return files


def _upload(client, files: list[tuple[str, bytes]]) -> list[str]:
    ids = []
    for name, data in files:
        response = client.post("/api/v1/documents/", files={"file": (name, data, "text/plain")})
        if response.status_code != 201:
            raise RuntimeError(f"upload of {name} answered {response.status_code}: {response.text[:300]}")
        ids.append(response.json()["id"])
    return ids


def _wait_ready(ids: list[str], *, timeout: float, bar=None) -> None:
    from documents.models import Document, Status

    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        states = dict(Document.objects.filter(public_id__in=ids).values_list("public_id", "status"))
        failed = [str(key) for key, state in states.items() if state == Status.FAILED]
        if failed:
            errors = list(Document.objects.filter(public_id__in=failed).values_list("error", flat=True))
            raise RuntimeError(f"ingestion failed: {errors}")
        ready = sum(state == Status.READY for state in states.values())
        if bar is not None and ready > done:
            bar.update(ready - done)
        done = ready
        if ready == len(ids):
            return
        time.sleep(0.2)
    raise RuntimeError(f"only {done} of {len(ids)} documents were ready after {timeout:.0f} s")


def _finished(ids: list[str]) -> float:
    from django.db.models import Max

    from documents.models import Document

    return Document.objects.filter(public_id__in=ids).aggregate(last=Max("ingested"))["last"].timestamp()


def _round(client, files, batch_size: int, number: int) -> dict:
    from documents import embeddings
    from documents.models import Chunk

    with progress(total=len(files), desc=f"ingestion round {number}: API → worker", unit="doc") as bar:
        start = time.time()
        ids = _upload(client, files)
        _wait_ready(ids, timeout=1800, bar=bar)
        pipeline_seconds = _finished(ids) - start
    texts = list(
        Chunk.objects.filter(document__public_id__in=ids)
        .order_by("document_id", "ordinal")
        .values_list("text", flat=True)
    )
    model = embeddings.get_model()
    tick = time.perf_counter()
    # One call over all the texts, as anyone would write it: encode() sorts them by length
    # across documents first (less padding), which the per-document pipeline cannot do.
    model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    raw_seconds = time.perf_counter() - tick
    say(
        f"ingestion round {number}: {len(texts)} chunks, pipeline {pipeline_seconds:.1f} s, "
        f"raw encode {raw_seconds:.1f} s"
    )
    return {
        "documents": len(files),
        "chunks": len(texts),
        "bytes": sum(len(data) for _, data in files),
        "pipeline_seconds": round(pipeline_seconds, 2),
        "raw_seconds": round(raw_seconds, 2),
        "pipeline_chunks_per_second": round(len(texts) / pipeline_seconds, 2),
        "raw_chunks_per_second": round(len(texts) / raw_seconds, 2),
        "ratio": round((len(texts) / pipeline_seconds) / (len(texts) / raw_seconds), 3),
    }


class _TreeMemory:
    """Samples the RSS of a process and its descendants in a background thread."""

    def __init__(self) -> None:
        self.peak_process = 0
        self.peak_tree = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._sample, args=(pid,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _sample(self, pid: int) -> None:
        import psutil

        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.wait(0.2):
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for process in processes:
                try:
                    sizes.append(process.memory_info().rss)
                except psutil.NoSuchProcess:
                    continue
            if sizes:
                self.peak_process = max(self.peak_process, max(sizes))
                self.peak_tree = max(self.peak_tree, sum(sizes))
