"""Background work for documents (django-q2 tasks; queued by ``documents.services``)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from documents import chunking, embeddings
from documents.extraction import ExtractionError, extract
from documents.models import Chunk, Document, DocumentFile, Status

log = logging.getLogger(__name__)

_MAX_ERROR_LENGTH = 2000
# What a failed document says when the cause is the server, not the file. The raw exception
# (paths, library internals) goes to the worker's log only: owners and readers see ``error``.
EMBEDDING_FAILED = "the server could not compute this document's passages; an administrator can re-index it"
UNEXPECTED_FAILURE = "processing failed unexpectedly; an administrator can find the cause in the worker's log"


class _Superseded(Exception):
    """The document was deleted or re-queued while this run worked; stop without writing."""


def ingest_document(document_id: int, generation: int | None = None) -> None:
    """Extract, chunk and embed one document, replacing its chunks in one transaction.

    ``generation`` is the document's ``ingest_generation`` when the run was queued (``None``:
    whatever it is now). A run returns quietly, writing nothing, when the document is gone or
    has been re-queued since (a newer generation owns it), also when it checks again between
    embedding batches and right before writing. So however runs interleave (retries,
    re-delivery after a killed worker, re-index while running), the document ends with exactly
    one complete set of chunks, from the newest run.

    Failures never raise (a raise would only make django-q2 retry a file that is broken): the
    document becomes ``failed`` with a readable ``error`` and no chunks, including chunks an
    earlier successful run left, so no failed document is ever half searchable. A worker
    killed mid-way leaves the document ``processing`` with its old chunks untouched, and the
    re-delivered run does the work again from the start.
    """
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None:
            log.info("document %s is gone; nothing to ingest", document_id)
            return
        if generation is None:
            generation = document.ingest_generation
        if document.ingest_generation != generation:
            log.info(
                "skipping stale ingestion of document %s (generation %s, current %s)",
                document_id,
                generation,
                document.ingest_generation,
            )
            return
        if document.status == Status.READY:
            log.info("document %s is already ingested (generation %s)", document_id, generation)
            return
        document.status = Status.PROCESSING
        document.progress_done = document.progress_total = 0
        document.error = ""
        document.save(update_fields=["status", "progress_done", "progress_total", "error", "updated"])
        data = DocumentFile.objects.filter(document_id=document_id).values_list("data", flat=True).first()
        mime_type = document.mime_type

    try:
        if data is None:
            raise ExtractionError("the uploaded file is missing — upload it again")
        _ingest(document_id, generation, bytes(data), mime_type)
    except _Superseded:
        log.info("ingestion of document %s (generation %s) was superseded", document_id, generation)
    except ExtractionError as exc:
        log.info("document %s cannot be read: %s", document_id, exc.message)
        _mark_failed(document_id, generation, exc.message)
    except embeddings.EmbeddingModelError as exc:
        log.error("embedding model problem while ingesting document %s: %s", document_id, exc)
        _mark_failed(document_id, generation, EMBEDDING_FAILED)
    except Exception:
        log.exception("ingestion of document %s failed", document_id)
        _mark_failed(document_id, generation, UNEXPECTED_FAILURE)


def _ingest(document_id: int, generation: int, data: bytes, mime_type: str) -> None:
    # Extraction, chunking and embedding run outside any transaction: they take long, and
    # holding the row lock would block the web pages that show the document's progress.
    sections = extract(data, mime_type)
    max_tokens = settings.CHUNK_MAX_TOKENS or embeddings.max_tokens()
    # A chunk the model cannot read whole would be truncated silently when embedded.
    max_tokens = min(max_tokens, embeddings.max_tokens())
    drafts = chunking.split_sections(
        sections,
        count_tokens=embeddings.count_tokens,
        max_tokens=max_tokens,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
    )
    if not drafts:
        raise ExtractionError("no text found")
    _write_progress(document_id, generation, done=0, total=len(drafts))

    vectors = []
    batch_size = settings.EMBEDDING_BATCH_SIZE
    for start in range(0, len(drafts), batch_size):
        batch = drafts[start : start + batch_size]
        vectors.extend(embeddings.embed_texts([draft.text for draft in batch], batch_size=batch_size))
        _write_progress(document_id, generation, done=start + len(batch), total=len(drafts))

    with transaction.atomic():
        document = _lock_current(document_id, generation)
        document.chunks.all().delete()
        location_length = Chunk._meta.get_field("location").max_length
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document=document,
                    ordinal=ordinal,
                    text=draft.text,
                    token_count=draft.token_count,
                    location=draft.location[:location_length],
                    page=draft.page,
                    embedding=vector,
                )
                for ordinal, (draft, vector) in enumerate(zip(drafts, vectors, strict=True))
            ],
            batch_size=500,
        )
        document.status = Status.READY
        document.progress_done = document.progress_total = len(drafts)
        document.error = ""
        document.embedding_model = embeddings.model_name()
        document.ingested = timezone.now()
        document.save(
            update_fields=[
                "status",
                "progress_done",
                "progress_total",
                "error",
                "embedding_model",
                "ingested",
                "updated",
            ]
        )
    log.info("ingested document %s: %d chunks (generation %s)", document_id, len(drafts), generation)


def _lock_current(document_id: int, generation: int) -> Document:
    """Lock the document row; raise ``_Superseded`` if it is gone or re-queued."""
    document = Document.objects.select_for_update().filter(pk=document_id).first()
    if document is None or document.ingest_generation != generation:
        raise _Superseded
    return document


def _write_progress(document_id: int, generation: int, *, done: int, total: int) -> None:
    # A conditional UPDATE rather than save(): it checks that this run still owns the document
    # and writes in one statement, and never overwrites the progress of a newer run.
    updated = Document.objects.filter(pk=document_id, ingest_generation=generation).update(
        progress_done=done, progress_total=total, updated=timezone.now()
    )
    if not updated:
        raise _Superseded


def _mark_failed(document_id: int, generation: int, message: str) -> None:
    try:
        with transaction.atomic():
            document = _lock_current(document_id, generation)
            document.chunks.all().delete()
            document.status = Status.FAILED
            document.error = message[:_MAX_ERROR_LENGTH]
            document.progress_done = document.progress_total = 0
            document.embedding_model = ""
            document.save(
                update_fields=["status", "error", "progress_done", "progress_total", "embedding_model", "updated"]
            )
    except _Superseded:
        log.info("document %s was re-queued or deleted before its failure was recorded", document_id)
