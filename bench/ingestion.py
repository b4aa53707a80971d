"""Ingestion through the real path (HTTP API → queue → worker), against the seed's stack, raw
encoding and a killed worker, in one run. Every figure is also given as a ratio.

What is measured, and how:

- A real daphne (``kb_site.serve``) and a real ``manage.py qcluster`` run as subprocesses on
  loopback against the bench database, with production-like settings (``DEBUG`` off, tasks on
  the django-q2 ORM broker, the configured ``EMBEDDING_BACKEND``). One document is ingested
  first so the worker has loaded its model (the cold start is reported on its own).
- **SciFact corpus**: every abstract (5,183; ``--quick``: 150) uploaded as its own plain-text
  document (title, blank line, text) with ``POST /api/v1/documents/`` and a Bearer token, by
  ``UPLOADERS`` client threads, as a bulk-upload script would. Time = first upload → last
  document ``ingested``. The uploads alone and the worker's span (first claim → last ready)
  are reported too.
- **Raw encode of the pipeline's own backend**: the chunk texts that corpus produced, read back
  from the database, embedded in this process with ``documents.embeddings.embed_texts`` in one
  call (``EMBEDDING_BATCH_SIZE``), right after the pipeline, with nothing else of ours running.
  Ratio = raw seconds / pipeline seconds (1.0: the pipeline costs nothing beyond encoding).
- **The seed's stack**: the same texts through LangChain ``RecursiveCharacterTextSplitter``
  (1000/100) + ``HuggingFaceEmbeddings`` (same local MiniLM folder) + ``FAISS.from_documents``
  in ``.venv-bench`` (``bench/seed_stack.py``). Ratio = kb's seconds / the seed's seconds.
- **The worker alone, on a queue**: with the worker stopped, 2,000 other abstracts (``--quick``:
  100) are uploaded; then a new qcluster starts on them. Time = its first claim → the last
  document ready (its model load included), against raw encode of the chunk texts they
  produced. This is what the pipeline itself costs beyond encoding, with no uploads competing
  for the two cores.
- **A batch of 2,000 one-abstract documents** (``--quick``: 100; uploaded by a second user so
  none is a duplicate of the corpus): first upload → all ready, against plain torch fp32
  ``SentenceTransformer.encode`` (batch 32) of the same 2,000 texts in this process. Twice:
  one file per request, and ``FILES_PER_REQUEST`` files per request (the API's several-file
  upload, as the site's form sends a folder's files), each by its own user.
- **Memory**: psutil samples the qcluster and daphne process trees every 0.2 s; reported are
  the peak RSS of the largest process of each (the worker holding the model; daphne) and the
  worker tree's peak sum (forked processes share pages, so the sum overstates).
- **Recovery**: a long document is uploaded; once the worker has chunked it and is embedding it, the
  whole qcluster process group is SIGKILLed and a new qcluster started at once. Time = kill →
  the document is ready again (lease expiry + sweep + a new worker's start and the work).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (
    BASE_DIR,
    LOGS_DIR,
    free_port,
    progress,
    say,
    site_command,
    start_process,
    stop_process,
    wait_for_port,
)

UPLOADERS = 4
FILES_PER_REQUEST = 100  # the several-file batch; UPLOAD_MAX_FILES is 100 by default
SEED_PYTHON = BASE_DIR / ".venv-bench" / "bin" / "python"
COUNTS = {"corpus": 5183, "batch": 2000, "queued": 2000, "recovery_paragraphs": 1500}
QUICK_COUNTS = {"corpus": 150, "batch": 100, "queued": 100, "recovery_paragraphs": 600}


def run(options, prepared: dict) -> dict:
    from django.conf import settings
    from django.contrib.auth.models import User

    from accounts.services import create_api_token
    from bench import scifact
    from documents import embeddings

    counts = QUICK_COUNTS if options.quick else COUNTS
    scifact.verify_checksums()
    corpus, _, _ = scifact.load_data()
    corpus_files = [(f"scifact-{entry['_id']}.txt", scifact.document_bytes(entry)) for entry in corpus]
    corpus_files = corpus_files[: counts["corpus"]]
    batch_files = [(f"batch-{name}", data) for name, data in corpus_files[: counts["batch"]]]
    if len(batch_files) < counts["batch"]:  # --quick with a tiny corpus slice: take more abstracts
        batch_files = [
            (f"batch-scifact-{entry['_id']}.txt", scifact.document_bytes(entry)) for entry in corpus[: counts["batch"]]
        ]
    # Abstracts after the batch's (none a duplicate of another user's: each phase is its own user).
    queued_files = [
        (f"queued-scifact-{entry['_id']}.txt", scifact.document_bytes(entry)) for entry in corpus[-counts["queued"] :]
    ]
    tokens = {
        name: create_api_token(User.objects.create_user(name, is_staff=True, is_superuser=True), name="bench")
        for name in ("bench-corpus", "bench-batch", "bench-batch-many", "bench-queued", "bench-recovery")
    }
    port = free_port()
    env = dict(os.environ)
    result: dict = {
        "path": "POST /api/v1/documents/ → django-q2 ORM broker → qcluster worker (batched ingest_document)",
        "backend": embeddings.model_name(),
        "batch_size": settings.EMBEDDING_BATCH_SIZE,
        "ingest_batch_documents": settings.INGEST_BATCH_DOCUMENTS,
        "ingest_batch_chunks": settings.INGEST_BATCH_CHUNKS,
        "lease_seconds": settings.INGEST_LEASE_SECONDS,
        "q_workers": settings.Q_CLUSTER["workers"],
        "uploaders": UPLOADERS,
        "quick": bool(options.quick),
    }
    worker_memory, web_memory = _TreeMemory(), _TreeMemory()
    daphne = worker = None
    try:
        daphne = start_process(site_command(port), env=env, log_path=LOGS_DIR / "ingestion-daphne.log")
        worker = _start_worker(env, "ingestion-qcluster.log")
        worker_memory.start(worker.pid)
        web_memory.start(daphne.pid)
        wait_for_port(port, timeout=60, process=daphne)
        base = f"http://127.0.0.1:{port}"

        with _client(base, tokens["bench-recovery"]) as api:
            tick = time.time()
            warm = _upload(api, [("warm-up.txt", b"Warm-up\n\nThe worker loads its embedding model once.\n")])
            _wait_ready(warm, timeout=600)
            result["cold_start_seconds"] = round(_last_ingested(warm) - tick, 1)
        say(f"ingestion: worker warm after {result['cold_start_seconds']} s")

        result["corpus"] = _through_pipeline(base, tokens["bench-corpus"], corpus_files, "corpus")
        result["raw"] = _raw_encode(result["corpus"].pop("ids"), settings.EMBEDDING_BATCH_SIZE)
        result["corpus"]["raw_seconds"] = result["raw"]["seconds"]
        result["corpus"]["raw_over_pipeline"] = round(result["raw"]["seconds"] / result["corpus"]["seconds"], 3)
        result["corpus"]["raw_over_worker_span"] = round(
            result["raw"]["seconds"] / result["corpus"]["worker_span_seconds"], 3
        )

        batch = _through_pipeline(base, tokens["bench-batch"], batch_files, "batch")
        batch.pop("ids")
        many = _through_pipeline(
            base,
            tokens["bench-batch-many"],
            batch_files,
            "batch, several files per request",
            per_request=FILES_PER_REQUEST,
        )
        many.pop("ids")
        torch_encode = _torch_encode([data.decode() for _, data in batch_files])
        for figures in (batch, many):
            figures["torch_fp32_encode"] = torch_encode
            figures["pipeline_over_torch"] = round(figures["seconds"] / torch_encode["seconds"], 3)
        result["batch"], result["batch_many"] = batch, many

        worker, result["queued"] = _queued(base, tokens["bench-queued"], queued_files, worker, worker_memory, env)
        result["web_rss_mb"] = round(web_memory.peak_process / 2**20, 1)
        worker, result["recovery"] = _recovery(base, tokens["bench-recovery"], worker, worker_memory, env, counts)
    finally:
        worker_memory.stop()
        web_memory.stop()
        stop_process(worker)
        stop_process(daphne)

    result["seed"] = _seed_stack([data.decode() for _, data in corpus_files], embeddings.model_path())
    result["corpus"]["seed_seconds"] = result["seed"]["seconds"]
    result["corpus"]["pipeline_over_seed"] = round(result["corpus"]["seconds"] / result["seed"]["seconds"], 3)
    result.update(
        worker_peak_rss_mb=round(worker_memory.peak_process / 2**20, 1),
        worker_tree_peak_rss_mb=round(worker_memory.peak_tree / 2**20, 1),
        web_peak_rss_mb=round(web_memory.peak_process / 2**20, 1),
    )
    _say_summary(result)
    return result


def _start_worker(env: dict, log_name: str) -> subprocess.Popen:
    return start_process([sys.executable, "manage.py", "qcluster"], env=env, log_path=LOGS_DIR / log_name)


def _through_pipeline(
    base: str, token: str, files: list[tuple[str, bytes]], label: str, *, per_request: int = 1
) -> dict:
    """Upload ``files`` (``per_request`` to a request) with UPLOADERS threads and wait until
    every one is ready."""
    from django.db.models import Max, Min

    from documents.models import Chunk, Document

    local = threading.local()

    def upload(group: list[tuple[str, bytes]]) -> list[str]:
        if not hasattr(local, "client"):
            local.client = _client(base, token)
        return _upload(local.client, group) if per_request == 1 else _upload_together(local.client, group)

    groups = [files[start : start + per_request] for start in range(0, len(files), per_request)]
    with progress(total=len(files), desc=f"ingestion {label}: API → worker", unit="doc") as bar:
        start = time.time()
        with ThreadPoolExecutor(UPLOADERS) as pool:
            ids = [public_id for group_ids in pool.map(upload, groups) for public_id in group_ids]
        uploads_seconds = time.time() - start
        _wait_ready(ids, timeout=7200, bar=bar)
    spans = Document.objects.filter(public_id__in=ids).aggregate(first=Min("ingest_started"), last=Max("ingested"))
    seconds = spans["last"].timestamp() - start
    chunks = Chunk.objects.filter(document__public_id__in=ids).count()
    say(
        f"ingestion {label}: {len(files)} documents, {chunks} chunks in {seconds:.1f} s "
        f"(uploads {uploads_seconds:.1f} s)"
    )
    return {
        "documents": len(files),
        "files_per_request": per_request,
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "uploads_seconds": round(uploads_seconds, 2),
        "worker_span_seconds": round((spans["last"] - spans["first"]).total_seconds(), 2),
        "chunks_per_second": round(chunks / seconds, 2),
        "documents_per_second": round(len(files) / seconds, 2),
        "ids": ids,
    }


def _queued(base: str, token: str, files: list[tuple[str, bytes]], worker, memory: _TreeMemory, env: dict):
    """Stop the worker, upload ``files``, start a new worker: its span against raw encode."""
    from django.conf import settings
    from django.db.models import Max, Min

    from documents.models import Document

    stop_process(worker)
    with _client(base, token) as api:
        ids = [_upload(api, [item])[0] for item in progress(files, desc="ingestion queued: uploads", unit="doc")]
    worker = _start_worker(env, "ingestion-qcluster-queued.log")
    memory.follow(worker.pid)
    _wait_ready(ids, timeout=3600)
    spans = Document.objects.filter(public_id__in=ids).aggregate(first=Min("ingest_started"), last=Max("ingested"))
    seconds = (spans["last"] - spans["first"]).total_seconds()
    raw = _raw_encode(ids, settings.EMBEDDING_BATCH_SIZE)
    say(f"ingestion queued: {len(ids)} documents in {seconds:.1f} s of worker; raw encode {raw['seconds']} s")
    return worker, {
        "documents": len(ids),
        "chunks": raw["chunks"],
        "worker_seconds": round(seconds, 2),
        "raw_seconds": raw["seconds"],
        "raw_over_worker": round(raw["seconds"] / seconds, 3),
    }


def _client(base: str, token: str):
    import httpx

    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _raw_encode(ids: list[str], batch_size: int) -> dict:
    """The pipeline's own backend on exactly the chunk texts the pipeline stored, in one call."""
    from documents import embeddings
    from documents.models import Chunk

    texts = list(
        Chunk.objects.filter(document__public_id__in=ids)
        .order_by("document_id", "ordinal")
        .values_list("text", flat=True)
    )
    embeddings.embed_texts(texts[:batch_size], batch_size)  # load the model outside the timing
    tick = time.perf_counter()
    embeddings.embed_texts(texts, batch_size)
    seconds = time.perf_counter() - tick
    say(f"ingestion raw encode ({embeddings.model_name()}): {len(texts)} chunks in {seconds:.1f} s")
    return {"chunks": len(texts), "seconds": round(seconds, 2), "chunks_per_second": round(len(texts) / seconds, 2)}


def _torch_encode(texts: list[str]) -> dict:
    """Plain sentence-transformers, torch fp32, batch 32, on the uploaded texts."""
    from sentence_transformers import SentenceTransformer

    from documents import embeddings

    model = SentenceTransformer(str(embeddings.model_path()), device="cpu", local_files_only=True)
    model.encode(texts[:32], batch_size=32, show_progress_bar=False)
    tick = time.perf_counter()
    model.encode(texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True)
    seconds = time.perf_counter() - tick
    del model
    say(f"ingestion torch fp32 encode: {len(texts)} texts in {seconds:.1f} s")
    return {"texts": len(texts), "seconds": round(seconds, 2), "texts_per_second": round(len(texts) / seconds, 2)}


def _recovery(base: str, token: str, worker, memory: _TreeMemory, env: dict, counts: dict):
    """SIGKILL the qcluster mid-document, start a new one at once; seconds until ready again."""

    from documents.models import Document, Status

    lines = ["# Field notes", ""]
    for i in range(counts["recovery_paragraphs"]):
        lines += [
            f"## Plot {i}",
            "",
            f"Plot {i} was sown with variety {i * 7 % 13} on day {i % 30 + 1}; the soil moisture was "
            f"{i % 17 + 20} percent and the seedlings reached {i % 9 + 3} centimetres by the end of the week.",
            "",
        ]
    with _client(base, token) as api:
        (doc_id,) = _upload(api, [("field-notes.md", "\n".join(lines).encode())])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = Document.objects.values("status", "progress_total").get(public_id=doc_id)
        # Chunked and being embedded (one encode call holds up to 16 batches, so progress_done
        # may jump from 0 to the end: waiting for it would often miss the moment).
        if state["status"] == Status.PROCESSING and state["progress_total"] > 0:
            break
        if state["status"] in (Status.READY, Status.FAILED):
            raise RuntimeError("the recovery document finished before the worker could be killed; make it longer")
        time.sleep(0.05)
    killed_at = time.time()
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    stop_process(worker)
    killed = Document.objects.values("progress_done", "progress_total").get(public_id=doc_id)
    say(f"ingestion recovery: worker killed at {killed['progress_done']} of {killed['progress_total']} chunks")
    worker = _start_worker(env, "ingestion-qcluster-2.log")
    memory.follow(worker.pid)
    _wait_ready([doc_id], timeout=900)
    document = Document.objects.get(public_id=doc_id)
    seconds = document.ingested.timestamp() - killed_at
    chunks = document.chunks.count()
    if sorted(document.chunks.values_list("ordinal", flat=True)) != list(range(chunks)):
        raise RuntimeError("the recovered document does not hold exactly one chunk set")
    say(f"ingestion recovery: ready again {seconds:.1f} s after the kill")
    return worker, {
        "chunks": chunks,
        "killed_at_chunk": killed["progress_done"],
        "seconds_until_ready": round(seconds, 1),
        "generation": document.ingest_generation,
        "lost_runs": document.lease_losses,
    }


def _seed_stack(texts: list[str], model_path: Path) -> dict:
    if not SEED_PYTHON.exists():
        raise RuntimeError("the seed stack's virtualenv is missing: run `make bench-venv` (make bench builds it)")
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as folder:
        source, target = Path(folder) / "in.json", Path(folder) / "out.json"
        source.write_text(json.dumps({"model_path": str(model_path), "texts": texts}), encoding="utf-8")
        say(f"ingestion seed stack: {len(texts)} documents through LangChain + HuggingFaceEmbeddings + FAISS")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with open(LOGS_DIR / "ingestion-seed.log", "wb") as log:
            subprocess.run(
                [str(SEED_PYTHON), str(BASE_DIR / "bench" / "seed_stack.py"), str(source), str(target)],
                check=True,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=7200,
            )
        figures = json.loads(target.read_text(encoding="utf-8"))
    say(f"ingestion seed stack: {figures['chunks']} chunks in {figures['seconds']} s")
    return figures


def _say_summary(result: dict) -> None:
    corpus, batch, many = result["corpus"], result["batch"], result["batch_many"]
    say(
        f"ingestion: corpus {corpus['seconds']} s = {corpus['pipeline_over_seed']}× the seed stack "
        f"({corpus['seed_seconds']} s; target ≤ 0.5); raw/pipeline {corpus['raw_over_pipeline']} (target ≥ 0.9); "
        f"{batch['documents']} documents {batch['seconds']} s = {batch['pipeline_over_torch']}× torch fp32 encode, "
        f"{many['files_per_request']} per request {many['seconds']} s = {many['pipeline_over_torch']}× "
        f"(target ≤ 0.5); worker peak RSS {result['worker_peak_rss_mb']} MB, web {result['web_peak_rss_mb']} MB; "
        f"killed worker's document ready again after {result['recovery']['seconds_until_ready']} s"
    )


def _upload(client, files: list[tuple[str, bytes]]) -> list[str]:
    ids = []
    for name, data in files:
        response = client.post("/api/v1/documents/", files={"file": (name, data, "text/plain")})
        if response.status_code != 201:
            raise RuntimeError(f"upload of {name} answered {response.status_code}: {response.text[:300]}")
        ids.append(response.json()["id"])
    return ids


def _upload_together(client, files: list[tuple[str, bytes]]) -> list[str]:
    """Upload ``files`` in one request (the API's several-file upload)."""
    response = client.post("/api/v1/documents/", files=[("file", (name, data, "text/plain")) for name, data in files])
    if response.status_code != 201:
        raise RuntimeError(f"upload of {len(files)} files answered {response.status_code}: {response.text[:300]}")
    return [body["id"] for body in response.json()["documents"]]


def _wait_ready(ids: list[str], *, timeout: float, bar=None) -> None:
    """Wait until every document of ``ids`` is ready. It polls their owners' documents (each
    bench phase uploads as its own user) with one small query twice a second: the watching
    should cost the two cores next to nothing (a poll naming 5,000 ids five times a second
    took a tenth of a core)."""
    from django.db.models import Count, Q

    from documents.models import Document, Status

    owners = set(Document.objects.filter(public_id__in=ids).values_list("owner_id", flat=True))
    mine = Document.objects.filter(owner_id__in=owners)
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        counts = mine.aggregate(
            ready=Count("pk", filter=Q(status=Status.READY)), failed=Count("pk", filter=Q(status=Status.FAILED))
        )
        if counts["failed"]:
            errors = list(mine.filter(status=Status.FAILED).values_list("error", flat=True)[:5])
            raise RuntimeError(f"ingestion failed: {errors}")
        ready = counts["ready"]
        if ready >= len(ids):  # the owners may hold other documents: count these exactly
            ready = Document.objects.filter(public_id__in=ids, status=Status.READY).count()
        if bar is not None and ready > done:
            bar.update(min(ready, len(ids)) - done)
        done = min(ready, len(ids))
        if done == len(ids):
            return
        time.sleep(0.5)
    raise RuntimeError(f"only {done} of {len(ids)} documents were ready after {timeout:.0f} s")


def _last_ingested(ids: list[str]) -> float:
    from django.db.models import Max

    from documents.models import Document

    return Document.objects.filter(public_id__in=ids).aggregate(last=Max("ingested"))["last"].timestamp()


class _TreeMemory:
    """Samples the RSS of a process and its descendants in a background thread."""

    def __init__(self) -> None:
        self.peak_process = 0
        self.peak_tree = 0
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self._pid = pid
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def follow(self, pid: int) -> None:
        """Sample another process from now on (a restarted worker); peaks carry over."""
        self._pid = pid

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            try:
                root = psutil.Process(self._pid)
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            sizes = []
            for process in processes:
                try:
                    sizes.append(process.memory_info().rss)
                except psutil.NoSuchProcess:
                    continue
            if sizes:
                self.peak_process = max(self.peak_process, max(sizes))
                self.peak_tree = max(self.peak_tree, sum(sizes))
