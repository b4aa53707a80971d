"""Writes for documents: upload, (re-)ingestion, deletion.

Every function here validates before it writes, so a rejected upload changes nothing stored,
and queues background work only once its transaction commits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import PurePath

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat

from documents import filetypes
from documents.models import DOCUMENT_TITLE_MAX_LENGTH, Document, DocumentFile, Status, Visibility

log = logging.getLogger(__name__)

INGEST_TASK = "documents.tasks.ingest_document"
GROUPS_REQUIRED = "Choose at least one group to share the document with."


class UploadError(Exception):
    """An upload was refused; ``message`` is for the person, ``code`` for the caller.

    Codes: ``empty``, ``too_large`` (the API answers 413), ``unsupported`` (type, by content),
    ``invalid`` (other bad arguments, e.g. an unknown visibility).
    """

    CODES = ("empty", "too_large", "unsupported", "invalid")

    def __init__(self, message: str, code: str = "invalid") -> None:
        if code not in self.CODES:
            raise ValueError(f"unknown UploadError code {code!r}")
        super().__init__(message)
        self.message = message
        self.code = code


def upload_document(
    owner,
    *,
    file_name: str,
    data: bytes,
    title: str = "",
    visibility: str = Visibility.PRIVATE,
    groups: Iterable[Group | int] = (),
) -> tuple[Document, bool]:
    """Store an uploaded file as a pending document and queue its ingestion.

    Returns ``(document, created)``. The same bytes uploaded again by the same owner return
    ``(existing document, False)`` and change nothing (not its title, visibility or groups).
    ``groups`` count only with ``visibility=groups``, which needs at least one.
    Raises ``UploadError`` (nothing stored) for empty, too large, unsupported or invalid input.
    """
    data = bytes(data)
    name, mime_type = check_upload(file_name, data)
    if visibility not in Visibility.values:
        raise UploadError(f"Unknown visibility {visibility!r}.", code="invalid")
    groups = list(groups) if visibility == Visibility.GROUPS else []
    if visibility == Visibility.GROUPS and not groups:
        raise UploadError(GROUPS_REQUIRED, code="invalid")

    sha256 = hashlib.sha256(data).hexdigest()
    existing = Document.objects.filter(owner=owner, sha256=sha256).first()
    if existing is not None:
        log.info("upload by user %s is a duplicate of document %s", owner.pk, existing.pk)
        return existing, False

    title = " ".join(title.split())[:DOCUMENT_TITLE_MAX_LENGTH]
    try:
        with transaction.atomic():
            document = Document.objects.create(
                owner=owner,
                title=title or _title_from(name),
                original_name=name,
                mime_type=mime_type,
                size=len(data),
                sha256=sha256,
                visibility=visibility,
            )
            DocumentFile.objects.create(document=document, data=data)
            if groups:
                document.groups.set(groups)
            start_ingestion(document)
    except IntegrityError:
        # The same bytes arrived twice at once: the other request created the document.
        existing = Document.objects.filter(owner=owner, sha256=sha256).first()
        if existing is None:
            raise
        return existing, False
    log.info("user %s uploaded document %s (%s, %d bytes)", owner.pk, document.pk, mime_type, len(data))
    return document, True


def check_upload(file_name: str, data: bytes) -> tuple[str, str]:
    """The one check of an uploaded file's bytes: ``(display-safe name, MIME type by content)``.

    Raises ``UploadError`` with code ``empty``, ``too_large`` (over ``UPLOAD_MAX_BYTES``) or
    ``unsupported`` (type decided by the bytes, not the name). The upload forms call it too.
    """
    name = filetypes.safe_filename(file_name)
    if not data:
        raise UploadError("The file is empty.", code="empty")
    if len(data) > settings.UPLOAD_MAX_BYTES:
        raise UploadError(too_large_message(name, len(data)), code="too_large")
    try:
        return name, filetypes.detect_mime_type(name, data)
    except filetypes.UnsupportedFile as exc:
        raise UploadError(exc.message, code="unsupported") from None


def too_large_message(what: str, size: int) -> str:
    return f"{what} is {_size(size)}; the largest file you can upload is {_size(settings.UPLOAD_MAX_BYTES)}."


def _size(size: int) -> str:
    return filesizeformat(size).replace("\xa0", " ")  # plain spaces: messages also go to JSON


def _title_from(file_name: str) -> str:
    stem = PurePath(file_name).stem or file_name
    return " ".join(stem.replace("_", " ").split()) or file_name


def start_ingestion(document: Document) -> None:
    """Mark ``document`` pending and queue its ingestion once the transaction commits.

    Bumps ``ingest_generation``: any run already queued or under way for an older generation
    stops without writing, so only the newest run produces the document's chunks. The current
    chunks stay until that run replaces them (they are not searchable while it is pending).
    """
    with transaction.atomic():
        locked = Document.objects.select_for_update().get(pk=document.pk)
        document.ingest_generation = locked.ingest_generation + 1
        document.status = Status.PENDING
        document.progress_done = 0
        document.progress_total = 0
        document.error = ""
        document.save(
            update_fields=["ingest_generation", "status", "progress_done", "progress_total", "error", "updated"]
        )
        generation = document.ingest_generation
        document_id = document.pk
        transaction.on_commit(lambda: _queue_ingestion(document_id, generation))
    log.info("queued ingestion of document %s (generation %d)", document_id, generation)


def _queue_ingestion(document_id: int, generation: int) -> None:
    from django_q.tasks import async_task

    async_task(INGEST_TASK, document_id, generation, task_name=f"ingest document {document_id} #{generation}")


def reindex_document(document: Document) -> None:
    """Re-extract, re-chunk and re-embed ``document`` in the background."""
    start_ingestion(document)


def delete_document(document: Document) -> None:
    """Delete ``document``, its stored bytes and its chunks. A run under way finds it gone and stops."""
    document_id = document.pk
    document.delete()
    log.info("deleted document %s", document_id)
