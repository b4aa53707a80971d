"""Background work for documents: ingestion in batches, under leases (django-q2 tasks, queued
by ``documents.services``).

**The pending documents are the queue.** An upload or re-index marks its document pending and,
once committed, calls ``request_ingestion``, which queues one ``ingest_pending`` run unless one
is already queued and has not started (a one-row flag, ``IngestionRequest``): a thousand
uploads cost a handful of queued tasks, not a thousand. A run clears the flag, claims the
oldest pending document and then more, oldest first (``SELECT … FOR UPDATE SKIP LOCKED``, so
runs on several workers never claim the same one): up to ``INGEST_BATCH_DOCUMENTS`` documents
or ``INGEST_BATCH_CHUNKS`` chunks; with its batch claimed, it queues the next run while more
are pending, which another worker can start at once. It reads and chunks each document, then
embeds the chunks of all of them together, in calls of several ``EMBEDDING_BATCH_SIZE``
batches, so a thousand one-paragraph documents cost about as many encode calls as one long
one. After each call, the documents whose last vector it computed are written together, in
one transaction (one COPY for all their chunks), and the progress of the others in one
statement. ``ingest_document(id, generation)`` processes one document alone (the sweep queues
it for a document whose run was lost); it returns quietly when another run has claimed or
finished that document.

**Exactly one chunk set.** Every write checks the generation the run claimed (see
``ingest_document``); a document re-queued or deleted meanwhile is left alone.

**Failure isolation.** Each document of a batch ends ``ready`` or ``failed`` on its own: an
unreadable file fails alone with its reason; when an encode call fails, its documents are
embedded again one by one and only those whose own texts fail are marked failed.

**Leases.** A run holds each document it claimed by a lease (``lease_owner``,
``lease_expires``, in database time): ``INGEST_LEASE_SECONDS``, renewed at every progress
write and by a heartbeat thread every third of that while the run lives, however long one
step takes. A live run is never robbed. When a worker dies (SIGKILL, out of memory, node
lost), its leases run out, and ``sweep_expired_leases`` (run every third of the lease by a
watch thread in every qcluster worker process) gives each such document a new generation and
queues it again, to be processed alone; after ``Q_MAX_ATTEMPTS`` lost runs it fails with a
reason. The dead run's own late writes, if any, are refused by the generation check, so the
work is never applied twice. The watch also queues ``ingest_pending`` when its worker has
been idle while documents sit pending with no task left to reach them (their tasks were in
the memory of the killed cluster, which django-q2 hands out again only after ``Q_RETRY``).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models.functions import Now
from django.utils import timezone

from documents import chunking, embeddings
from documents.extraction import ExtractionError, extract
from documents.models import Chunk, Document, DocumentFile, IngestionRequest, Status

log = logging.getLogger(__name__)

_MAX_ERROR_LENGTH = 2000
# What a failed document says when the cause is the server, not the file. The raw exception
# (paths, library internals) goes to the worker's log only: owners and readers see ``error``.
EMBEDDING_FAILED = "the server could not compute this document's passages; an administrator can re-index it"
UNEXPECTED_FAILURE = "processing failed unexpectedly; an administrator can find the cause in the worker's log"
WORKER_LOST = (
    "processing stopped {count} times before it finished (the worker was killed, ran out of memory or "
    "of time); an administrator can find the cause in the worker's log"
)
FILE_MISSING = "the uploaded file is missing — upload it again"

# One encode call takes this many EMBEDDING_BATCH_SIZE batches: the backend can sort them by
# length (less padding) and keeps every stream busy to the end, while progress is still
# written after every call (a few seconds), so a long document's bar moves and a killed run
# loses little. Measured here on 1,000 one-abstract documents (1,900 chunks): calls of 512
# chunks encode them about 20 % faster than calls of 120.
_BATCHES_PER_CALL = 16


def _per_call() -> int:
    """Chunks per encode call."""
    return settings.EMBEDDING_BATCH_SIZE * _BATCHES_PER_CALL


# Documents claimed per query while a run fills its batch.
_CLAIM_GROUP = 16
# Documents the sweep recovers per transaction (it runs again a few seconds later).
_SWEEP_LIMIT = 100


@dataclass(eq=False)  # compared and hashed by identity: one object per claimed document
class _Held:
    """A document this run has claimed, and what the run has made of it so far."""

    id: int
    generation: int
    mime_type: str
    lease_losses: int = 0
    drafts: list[chunking.ChunkDraft] = field(default_factory=list)
    vectors: list = field(default_factory=list)  # one row per draft, in order, as they are embedded
    finished: bool = False  # written, failed or superseded: nothing more to do


class _Run:
    """One execution of a task: the name its leases carry."""

    def __init__(self) -> None:
        self.owner = f"{socket.gethostname()[:60]}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _lease_expiry():
    """The end of a lease taken or renewed now, in database time (no clock skew between hosts)."""
    return Now() + timedelta(seconds=settings.INGEST_LEASE_SECONDS)


# -- tasks --------------------------------------------------------------------------------------


def ingest_document(document_id: int, generation: int | None = None) -> None:
    """Ingest document ``document_id`` and, in the same batch, other pending documents.

    ``generation`` is the document's ``ingest_generation`` when the run was queued (``None``:
    whatever it is now). The run returns quietly, writing nothing, when the document is gone,
    has been re-queued since (a newer generation owns it), or is no longer pending (another
    run claimed it into its batch, finished it, or holds its lease). Each document of the
    batch is checked again before each write, so however runs interleave (retries,
    re-delivery after a killed worker, re-index while running), every document ends with
    exactly one complete set of chunks, from its newest run.

    Failures never raise (a raise would only make django-q2 retry a file that is broken): the
    document becomes ``failed`` with a readable ``error`` and no chunks, including chunks an
    earlier successful run left, so no failed document is ever half searchable. A worker killed
    mid-way leaves its documents ``processing`` with their old chunks untouched until their
    leases run out and the sweep queues them again.
    """
    run = _Run()
    first = _claim_document(run, document_id, generation)
    if first is not None:
        _process(run, first)


def ingest_pending() -> None:
    """Ingest the oldest pending documents, as one batch. Queued by ``request_ingestion``
    (uploads and re-index) and by the watch (see the module docstring). It clears the request
    flag first, so documents committed from then on queue a new run; and once it has claimed
    its batch, it queues the next run itself while more are pending, which another worker can
    start at once."""
    from documents.services import request_ingestion

    IngestionRequest.objects.update(wanted=False)
    run = _Run()
    first = _claim_oldest(run)
    if first is None:
        return
    _process(run, first, claimed=lambda: _pending_exist() and request_ingestion())


def _pending_exist() -> bool:
    return Document.objects.filter(status=Status.PENDING).exists()


# -- claiming -----------------------------------------------------------------------------------


def _claim_document(run: _Run, document_id: int, generation: int | None) -> _Held | None:
    with transaction.atomic():
        row = (
            Document.objects.select_for_update()
            .filter(pk=document_id)
            .values("ingest_generation", "status", "mime_type", "lease_losses")
            .first()
        )
        if row is None:
            log.info("document %s is gone; nothing to ingest", document_id)
            return None
        if generation is None:
            generation = row["ingest_generation"]
        if row["ingest_generation"] != generation:
            log.info(
                "skipping stale ingestion of document %s (generation %s, current %s)",
                document_id,
                generation,
                row["ingest_generation"],
            )
            return None
        if row["status"] != Status.PENDING:
            log.info("document %s is %s already (generation %s)", document_id, row["status"], generation)
            return None
        _take(run, [document_id])
    return _Held(document_id, generation, row["mime_type"], row["lease_losses"])


def _claim_oldest(run: _Run) -> _Held | None:
    with transaction.atomic():
        row = (
            Document.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING)
            .order_by("created", "pk")
            .values("pk", "ingest_generation", "mime_type", "lease_losses")
            .first()
        )
        if row is None:
            return None
        _take(run, [row["pk"]])
    return _Held(row["pk"], row["ingest_generation"], row["mime_type"], row["lease_losses"])


def _claim_pending(run: _Run, limit: int) -> list[_Held]:
    """Claim up to ``limit`` pending documents, oldest first, skipping any another run is
    claiming right now. Documents that lost a run before are left to their own task, which
    processes them alone."""
    with transaction.atomic():
        rows = list(
            Document.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, lease_losses=0)
            .order_by("created", "pk")
            .values_list("pk", "ingest_generation", "mime_type")[:limit]
        )
        if rows:
            _take(run, [pk for pk, _, _ in rows])
    return [_Held(pk, generation, mime_type) for pk, generation, mime_type in rows]


def _take(run: _Run, ids: list[int]) -> None:
    """Mark ``ids`` (locked by the caller's transaction) processing under ``run``'s lease."""
    Document.objects.filter(pk__in=ids).update(
        status=Status.PROCESSING,
        lease_owner=run.owner,
        lease_expires=_lease_expiry(),
        ingest_started=Now(),
        progress_done=0,
        progress_total=0,
        error="",
        updated=timezone.now(),
    )


def _renew(run: _Run) -> int:
    """Extend the lease of every document ``run`` still holds; how many it holds."""
    return Document.objects.filter(lease_owner=run.owner, status=Status.PROCESSING).update(
        lease_expires=_lease_expiry()
    )


class _Heartbeat:
    """Renews a run's leases every third of ``INGEST_LEASE_SECONDS`` from a thread, so a step
    that takes longer than a lease (a large PDF, a long encode call) never loses its documents
    while the worker lives. A worker that dies stops renewing with it."""

    def __init__(self, run: _Run, interval: float | None = None) -> None:
        self.run = run
        self.interval = interval if interval is not None else settings.INGEST_LEASE_SECONDS / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ingest-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    _renew(self.run)
                except Exception:
                    # The next beat tries again; if the database stays away the lease lapses
                    # and the generation check stops this run's writes.
                    log.warning("could not renew the leases of run %s", self.run.owner, exc_info=True)
        finally:
            connection.close()


# -- processing ---------------------------------------------------------------------------------


def _process(run: _Run, first: _Held, claimed: Callable[[], object] | None = None) -> None:
    """Fill a batch starting with ``first``, then embed and write it; ``claimed`` is called
    once the batch is complete, before the long part."""
    held = [first]
    with _Heartbeat(run):
        _prepare([first])
        chunks = len(first.drafts)
        # A document that lost a run before goes alone: if it kills workers, it takes no
        # batch-mates down with it.
        if first.lease_losses == 0:
            while len(held) < settings.INGEST_BATCH_DOCUMENTS and chunks < settings.INGEST_BATCH_CHUNKS:
                more = _claim_pending(run, min(_CLAIM_GROUP, settings.INGEST_BATCH_DOCUMENTS - len(held)))
                if not more:
                    break
                held += more
                _prepare(more)
                chunks += sum(len(document.drafts) for document in more)
        if claimed is not None:
            claimed()
        _embed_and_write(run, [document for document in held if not document.finished])
    log.info(
        "ingestion run %s: %d documents, %d chunks",
        run.owner,
        len(held),
        chunks,
        extra={"event": "ingestion_run", "run": run.owner, "documents": len(held), "chunks": chunks},
    )


def _prepare(documents: list[_Held]) -> None:
    """Read and chunk ``documents`` (their files fetched in one query) and write the progress
    total of the long ones; a failure marks only its own document failed (it leaves the
    batch)."""
    files = dict(
        DocumentFile.objects.filter(document_id__in=[document.id for document in documents]).values_list(
            "document_id", "data"
        )
    )
    # A chunk the model cannot read whole would be truncated silently when embedded.
    max_tokens = min(settings.CHUNK_MAX_TOKENS or embeddings.max_tokens(), embeddings.max_tokens())
    tokens_add_up = embeddings.tokens_add_up()
    for document in documents:
        with _failures_recorded(document):
            data = files.pop(document.id, None)
            if data is None:
                raise ExtractionError(FILE_MISSING)
            # Extraction and chunking run outside any transaction: they take long, and holding
            # the row lock would block the web pages that show the document's progress.
            sections = extract(bytes(data), document.mime_type)
            del data
            document.drafts = chunking.split_sections(
                sections,
                count_tokens=embeddings.count_tokens,
                count_many=embeddings.count_tokens_many,
                tokens_add_up=tokens_add_up,
                max_tokens=max_tokens,
                overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            )
            if not document.drafts:
                raise ExtractionError("no text found")
    # The total is shown while a document waits for more than one encode call; a small one is
    # written once, when it is ready.
    long = [document for document in documents if not document.finished and len(document.drafts) > _per_call()]
    _write_progress(long)


class _failures_recorded:
    """``with _failures_recorded(document): ...`` turns an exception about ``document`` into
    its final state: failed with a readable reason (unless a newer run owns it or it was
    deleted: then nothing is written). Only ``Exception``s: a worker being killed is not the
    document's failure."""

    def __init__(self, document: _Held) -> None:
        self.document = document

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, traceback) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        document = self.document
        document.finished = True
        document.drafts, document.vectors = [], []
        if isinstance(exc, ExtractionError):
            log.info("document %s cannot be read: %s", document.id, exc.message)
            _mark_failed(document, exc.message)
        elif isinstance(exc, embeddings.EmbeddingModelError):
            log.error("embedding model problem while ingesting document %s: %s", document.id, exc)
            _mark_failed(document, EMBEDDING_FAILED)
        else:
            log.error("ingestion of document %s failed", document.id, exc_info=(kind, exc, traceback))
            _mark_failed(document, UNEXPECTED_FAILURE)
        return True


def _embed_and_write(run: _Run, documents: list[_Held]) -> None:
    """Embed the chunks of ``documents`` together, in document order, several batches per
    call; after each call, write the documents whose last vector it computed (together, in one
    transaction) and the progress of the others."""
    batch_size = settings.EMBEDDING_BATCH_SIZE
    per_call = _per_call()
    items = [(document, index) for document in documents for index in range(len(document.drafts))]
    for start in range(0, len(items), per_call):
        part = [(document, index) for document, index in items[start : start + per_call] if not document.finished]
        if not part:
            continue
        _embed(part, batch_size)
        touched = [document for document in dict.fromkeys(document for document, _ in part) if not document.finished]
        _finish([document for document in touched if len(document.vectors) == len(document.drafts)])
        _write_progress([document for document in touched if not document.finished])
        _renew(run)


def _embed(part: list[tuple[_Held, int]], batch_size: int) -> None:
    """Append the vectors of ``part``'s chunks to their documents. If the call fails, embed
    each document's chunks on their own, so only a document whose own texts fail is failed."""
    try:
        vectors = embeddings.embed_texts([document.drafts[index].text for document, index in part], batch_size)
    except Exception:
        documents = list(dict.fromkeys(document for document, _ in part))
        if len(documents) > 1:
            log.warning("embedding chunks of %d documents together failed; embedding them one by one", len(documents))
        for document, group in itertools.groupby(part, key=lambda item: item[0]):
            with _failures_recorded(document):
                texts = [document.drafts[index].text for _, index in group]
                document.vectors.extend(embeddings.embed_texts(texts, batch_size))
        return
    for (document, _), vector in zip(part, vectors, strict=True):
        document.vectors.append(vector)


def _finish(documents: list[_Held]) -> None:
    """Replace each document's chunks with its new set and mark it ready: all of them in one
    transaction (one lock query, one delete, one COPY, one update), leaving out any a newer
    run owns or that was deleted. Should that transaction fail, each document is written in
    its own, so only a document whose own data fails is failed."""
    if not documents:
        return
    try:
        with transaction.atomic():
            current = _lock_current(documents)
            _replace_chunks(current)
    except Exception:
        if len(documents) == 1:
            with _failures_recorded(documents[0]):
                raise
            return
        log.warning("writing %d documents together failed; writing them one by one", len(documents), exc_info=True)
        for document in documents:
            _finish([document])
        return
    for document in documents:
        if document in current:
            count = len(document.drafts)
            log.info("ingested document %s: %d chunks (generation %s)", document.id, count, document.generation)
        else:
            log.info("ingestion of document %s (generation %s) was superseded", document.id, document.generation)
        document.finished = True
        document.drafts, document.vectors = [], []


def _replace_chunks(documents: list[_Held]) -> None:
    """Within the caller's transaction, with the rows locked: the new chunk sets, and ready."""
    if not documents:
        return
    ids = [document.id for document in documents]
    Chunk.objects.filter(document_id__in=ids).delete()
    location_length = Chunk._meta.get_field("location").max_length
    Chunk.objects.copy_in(
        Chunk(
            document_id=document.id,
            ordinal=ordinal,
            text=draft.text,
            token_count=draft.token_count,
            location=draft.location[:location_length],
            page=draft.page,
            embedding=vector,
        )
        for document in documents
        for ordinal, (draft, vector) in enumerate(zip(document.drafts, document.vectors, strict=True))
    )
    _write_progress(documents, ready=True)


def _lock_current(documents: list[_Held]) -> list[_Held]:
    """Lock the rows of ``documents``; those neither deleted nor re-queued since their claim."""
    return _current(documents, lock=True)


def _current(documents: list[_Held], *, lock: bool = False) -> list[_Held]:
    """Those of ``documents`` neither deleted nor re-queued since their claim (same generation);
    ``lock``: their rows locked, in id order, until the caller's transaction ends."""
    rows = Document.objects.filter(pk__in=[document.id for document in documents])
    if lock:
        rows = rows.select_for_update().order_by("pk")
    generations = dict(rows.values_list("pk", "ingest_generation"))
    return [document for document in documents if generations.get(document.id) == document.generation]


def _write_progress(documents: list[_Held], *, ready: bool = False) -> None:
    """Write the progress of ``documents`` in conditional UPDATEs (one per distinct count),
    which check that this run still owns each one (its generation), so they never overwrite a
    newer run's progress, and renew its lease. ``ready``: they are done (within ``_finish``'s transaction) and
    become ready, releasing their lease. A document the UPDATE leaves out was deleted or
    re-queued: it is finished for this run (superseded), and nothing more is written for it."""
    if not documents:
        return
    common: dict = {"updated": timezone.now()}
    if ready:
        common.update(
            status=Status.READY,
            error="",
            embedding_model=embeddings.model_name(),
            ingested=timezone.now(),
            lease_owner="",
            lease_expires=None,
        )
    else:
        common.update(lease_expires=_lease_expiry())

    # One UPDATE per distinct (generation, done, total): a batch of small documents has few.
    def key(document: _Held) -> tuple[int, int, int]:
        return document.generation, len(document.vectors), len(document.drafts)

    written = 0
    for (generation, done, total), group in itertools.groupby(sorted(documents, key=key), key=key):
        ids = [document.id for document in group]
        written += Document.objects.filter(pk__in=ids, ingest_generation=generation).update(
            progress_done=done, progress_total=total, **common
        )
    if written < len(documents) and not ready:
        current = _current(documents)
        for document in documents:
            if document not in current:
                log.info("ingestion of document %s (generation %s) was superseded", document.id, document.generation)
                document.finished = True
                document.drafts, document.vectors = [], []


def _mark_failed(document: _Held, message: str) -> None:
    with transaction.atomic():
        if not _lock_current([document]):
            log.info("document %s was re-queued or deleted before its failure was recorded", document.id)
            return
        Chunk.objects.filter(document_id=document.id).delete()
        Document.objects.filter(pk=document.id).update(
            status=Status.FAILED,
            error=message[:_MAX_ERROR_LENGTH],
            progress_done=0,
            progress_total=0,
            embedding_model="",
            lease_owner="",
            lease_expires=None,
            updated=timezone.now(),
        )


# -- recovery -----------------------------------------------------------------------------------


def sweep_expired_leases() -> int:
    """Recover every ``processing`` document whose lease has run out (its run's worker died):
    a new generation, ``pending``, queued again, to be processed alone; or ``failed`` with a
    reason once ``Q_MAX_ATTEMPTS`` runs of it were lost. Old chunks stay until a new run
    replaces them (or the failure removes them). Returns how many documents it recovered.

    Safe to run anywhere, any number of times at once: each expired document is locked
    (``SKIP LOCKED``) and recovered by exactly one sweep.
    """
    from documents.services import _queue_ingestion as queue_ingestion

    max_losses = settings.Q_CLUSTER["max_attempts"]
    with transaction.atomic():
        rows = list(
            Document.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PROCESSING, lease_expires__lt=Now())
            .order_by("lease_expires")
            .values_list("pk", "ingest_generation", "lease_losses", "lease_owner")[:_SWEEP_LIMIT]
        )
        for document_id, generation, losses, owner in rows:
            losses += 1
            log.warning(
                "the lease of %s on document %s (generation %s) ran out; lost runs: %d",
                owner,
                document_id,
                generation,
                losses,
            )
            if losses >= max_losses:
                Chunk.objects.filter(document_id=document_id).delete()
                Document.objects.filter(pk=document_id).update(
                    status=Status.FAILED,
                    error=WORKER_LOST.format(count=losses),
                    lease_losses=losses,
                    lease_owner="",
                    lease_expires=None,
                    progress_done=0,
                    progress_total=0,
                    embedding_model="",
                    updated=timezone.now(),
                )
                continue
            Document.objects.filter(pk=document_id).update(
                status=Status.PENDING,
                ingest_generation=generation + 1,
                lease_losses=losses,
                lease_owner="",
                lease_expires=None,
                progress_done=0,
                progress_total=0,
                updated=timezone.now(),
            )
            transaction.on_commit(lambda pk=document_id, new=generation + 1: queue_ingestion(pk, new))
    return len(rows)


def stalled_pending_exists() -> bool:
    """Whether some document has been pending, untouched, for longer than a lease."""
    cutoff = timezone.now() - timedelta(seconds=settings.INGEST_LEASE_SECONDS)
    return Document.objects.filter(status=Status.PENDING, updated__lt=cutoff).exists()


def resume_requests() -> None:
    """At a worker's start: clear a request flag a killed cluster may have left set with its
    queued run lost, and request a run if documents are pending, so they need not wait for
    the watch's stalled-document check."""
    if _pending_exist():
        _queue_ingest_pending()
    else:
        IngestionRequest.objects.update(wanted=False)


def _queue_ingest_pending() -> None:
    """Queue ``ingest_pending`` whatever the request flag says (the run that set it may be
    lost): clear the flag, then request as an upload does."""
    from documents.services import request_ingestion

    IngestionRequest.objects.update(wanted=False)
    request_ingestion()


class IngestionWatch:
    """A thread in each qcluster worker process (started on django-q2's ``post_spawn``) that
    first resumes requests (``resume_requests``), then every third of ``INGEST_LEASE_SECONDS``
    sweeps expired leases, and queues ``ingest_pending`` when its worker has run no task for
    two rounds while a document has sat pending for longer than a lease."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval if interval is not None else settings.INGEST_LEASE_SECONDS / 3
        self.running_tasks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ingest-watch", daemon=True)

    def start(self) -> IngestionWatch:
        from django_q.signals import post_execute_in_worker, pre_execute

        pre_execute.connect(self._task_started, weak=False, dispatch_uid=f"ingest-watch-start-{id(self)}")
        post_execute_in_worker.connect(self._task_ended, weak=False, dispatch_uid=f"ingest-watch-end-{id(self)}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _task_started(self, **kwargs) -> None:
        self.running_tasks += 1

    def _task_ended(self, **kwargs) -> None:
        self.running_tasks = max(0, self.running_tasks - 1)

    def _watch(self) -> None:
        idle_rounds = 0
        try:
            try:
                resume_requests()
            except Exception:
                log.exception("the ingestion watch could not look for pending documents at start")
            while not self._stop.wait(self.interval):
                try:
                    close_old_connections()
                    if sweep_expired_leases():
                        idle_rounds = 0
                    idle_rounds = idle_rounds + 1 if self.running_tasks == 0 else 0
                    if idle_rounds >= 2 and stalled_pending_exists():
                        log.warning("documents are pending with no task to reach them; queueing ingest_pending")
                        _queue_ingest_pending()
                        idle_rounds = 0
                except Exception:
                    log.exception("the ingestion watch failed; it tries again in %.0f s", self.interval)
        finally:
            connection.close()


_watch: IngestionWatch | None = None
_watch_lock = threading.Lock()


def start_watch() -> IngestionWatch | None:
    """Start this worker process's watch, once (documents/apps.py calls it on django-q2's
    ``post_spawn``). Not in sync mode (``Q_SYNC``), where django-q2 runs each task through a
    throw-away in-process "worker" that sends ``post_spawn`` too: there is no cluster to watch."""
    global _watch
    if settings.Q_CLUSTER.get("sync"):
        return None
    with _watch_lock:
        if _watch is None:
            _watch = IngestionWatch().start()
            log.info("ingestion watch started (every %.0f s)", _watch.interval)
    return _watch
