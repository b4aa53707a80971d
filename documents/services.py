"""Writes for documents: upload, (re-)ingestion, deletion.

Every function here validates before it writes, so a rejected upload changes nothing stored,
and queues background work only once its transaction commits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import PurePath

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from documents import filetypes
from documents.models import DOCUMENT_TITLE_MAX_LENGTH, Collection, Document, DocumentFile, Status, Visibility

log = logging.getLogger(__name__)

INGEST_TASK = "documents.tasks.ingest_document"
INGEST_PENDING_TASK = "documents.tasks.ingest_pending"
GROUPS_REQUIRED = "Choose at least one group to share the document with."


class UploadError(Exception):
    """An upload was refused; ``message`` is for the person, ``code`` for the caller.

    Codes: ``empty``, ``too_large`` (the API answers 413), ``unsupported`` (type, by content),
    ``quota`` (the owner keeps as many documents or bytes as they may: ``USER_MAX_DOCUMENTS``,
    ``USER_MAX_BYTES``; the API answers 409), ``invalid`` (other bad arguments, e.g. an unknown
    visibility).
    """

    CODES = ("empty", "too_large", "unsupported", "quota", "invalid")

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
    Raises ``UploadError`` (nothing stored) for empty, too large, unsupported or invalid input,
    and with code ``quota`` when a new document would take the owner past ``USER_MAX_DOCUMENTS``
    or ``USER_MAX_BYTES`` (a duplicate is never refused: it stores nothing).
    """
    return upload_documents(owner, [(file_name, data)], title=title, visibility=visibility, groups=groups)[0]


def upload_documents(
    owner,
    files: Sequence[tuple[str, bytes]],
    *,
    title: str = "",
    visibility: str = Visibility.PRIVATE,
    groups: Iterable[Group | int] = (),
) -> list[tuple[Document, bool]]:
    """Store several uploaded files ``(name, bytes)`` at once, all or none, with the same
    visibility and groups: ``[(document, created)]`` in the order given (see ``upload_document``).

    Every file is checked first, and one bad file refuses them all (its name starts the
    message); the quota counts the new ones together. A file whose bytes the owner already has,
    or which repeats an earlier file of the same call, is a duplicate. ``title`` names a single
    file only. One transaction stores them and one ingestion run is requested once it commits.
    """
    if not files:
        raise UploadError("Choose a file to upload.", code="invalid")
    several = len(files) > 1
    if several and title.strip():
        raise UploadError("A title names one document: upload the files without one.", code="invalid")
    checked = []
    for file_name, data in files:
        data = bytes(data)
        try:
            name, mime_type = check_upload(file_name, data)
        except UploadError as exc:
            if several:
                raise UploadError(f"{filetypes.safe_filename(file_name)}: {exc.message}", code=exc.code) from None
            raise
        checked.append((name, mime_type, data, hashlib.sha256(data).hexdigest()))
    total = sum(len(data) for _, _, data, _ in checked)
    if several and total > settings.UPLOAD_MAX_BYTES:
        raise UploadError(
            f"These {len(files):,} files take {_size(total)} together; one upload may carry at most "
            f"{_size(settings.UPLOAD_MAX_BYTES)}. Upload them in smaller groups.",
            code="too_large",
        )
    if len(files) > settings.UPLOAD_MAX_FILES:
        raise UploadError(f"Upload at most {settings.UPLOAD_MAX_FILES:,} files at a time.", code="invalid")
    if visibility not in Visibility.values:
        raise UploadError(f"Unknown visibility {visibility!r}.", code="invalid")
    groups = list(groups) if visibility == Visibility.GROUPS else []
    if visibility == Visibility.GROUPS and not groups:
        raise UploadError(GROUPS_REQUIRED, code="invalid")

    title = " ".join(title.split())[:DOCUMENT_TITLE_MAX_LENGTH]
    shas = {sha256 for *_, sha256 in checked}
    try:
        with transaction.atomic():
            if _quotas_apply():
                # One upload at a time per owner past this point, so two at once cannot both
                # fit under the quota (the lock ends with the transaction).
                list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk"))
            held = {d.sha256: d for d in Document.objects.filter(owner=owner, sha256__in=shas)}
            new = {sha256: (name, mime_type, data) for name, mime_type, data, sha256 in checked if sha256 not in held}
            if new:
                check_quota(owner, sum(len(data) for _, _, data in new.values()), count=len(new))
                created = _create_documents(owner, new, title=title, visibility=visibility, groups=groups)
                transaction.on_commit(request_ingestion)
            else:
                created = {}
    except IntegrityError:
        # The same bytes arrived at once in another request, which created the document: what
        # is stored now answers this one (each file a duplicate, or again if some are new).
        if not Document.objects.filter(owner=owner, sha256__in=shas).exists():
            raise
        return upload_documents(owner, files, title=title, visibility=visibility, groups=groups)
    documents = {**held, **created}
    results, seen = [], set()
    for *_, sha256 in checked:
        results.append((documents[sha256], sha256 in created and sha256 not in seen))
        seen.add(sha256)
    for document, is_new in results:
        if is_new:
            log.info(
                "user %s uploaded document %s (%s, %d bytes)", owner.pk, document.pk, document.mime_type, document.size
            )
        else:
            log.info("upload by user %s is a duplicate of document %s", owner.pk, document.pk)
    return results


def _create_documents(owner, new: dict, *, title: str, visibility: str, groups: list) -> dict[str, Document]:
    """Insert the documents of ``new`` (``{sha256: (name, mime type, bytes)}``), their stored
    bytes and their groups, with one statement per table (the statistics triggers run once)."""
    documents = Document.objects.bulk_create(
        [
            Document(
                ingest_generation=1,
                owner=owner,
                title=title or _title_from(name),
                original_name=name,
                mime_type=mime_type,
                size=len(data),
                sha256=sha256,
                visibility=visibility,
            )
            for sha256, (name, mime_type, data) in new.items()
        ]
    )
    DocumentFile.objects.bulk_create(
        [DocumentFile(document=document, data=new[document.sha256][2]) for document in documents]
    )
    if groups:
        group_ids = [group.pk if isinstance(group, Group) else int(group) for group in groups]
        through = Document.groups.through
        through.objects.bulk_create(
            [through(document_id=document.pk, group_id=group_id) for document in documents for group_id in group_ids],
            ignore_conflicts=True,
        )
    return {document.sha256: document for document in documents}


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


def _quotas_apply() -> bool:
    return bool(settings.USER_MAX_DOCUMENTS or settings.USER_MAX_BYTES)


def check_quota(owner, size: int, sha256: str | None = None, *, count: int = 1) -> None:
    """Raise ``UploadError`` (code ``quota``) if storing ``size`` more bytes as ``count`` new
    documents would take ``owner`` past ``USER_MAX_DOCUMENTS`` or ``USER_MAX_BYTES`` (0: no limit).

    Every document the owner has counts, whatever its status (failed ones keep their bytes),
    each once: the same bytes again are a duplicate, which stores nothing, so with ``sha256``
    of bytes the owner already has, nothing is refused. Staff are not exempt.
    """
    if not _quotas_apply():
        return
    if sha256 is not None and Document.objects.filter(owner=owner, sha256=sha256).exists():
        return
    held = Document.objects.filter(owner=owner).aggregate(count=Count("pk"), size=Sum("size"))
    held_count, held_bytes = held["count"], held["size"] or 0
    max_documents, max_bytes = settings.USER_MAX_DOCUMENTS, settings.USER_MAX_BYTES
    name = owner.get_username()
    if max_documents and held_count + count > max_documents:
        if count == 1:
            message = f"{name} already has {held_count:,} documents, the most one person may keep."
        else:
            message = (
                f"{name} has {held_count:,} documents and may keep {max_documents:,}; these {count:,} files "
                "would take them past that."
            )
        raise UploadError(f"{message} Delete some to upload more.", code="quota")
    if max_bytes and held_bytes + size > max_bytes:
        these = "this file" if count == 1 else f"these {count:,} files"
        raise UploadError(
            f"{name}'s documents take {_size(held_bytes)}; {these} ({_size(size)}) would take them past "
            f"{_size(max_bytes)}, the most one person may keep. Delete some to upload more.",
            code="quota",
        )


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
    The lease of a run under way is dropped and the count of lost runs starts again.
    """
    with transaction.atomic():
        locked = Document.objects.select_for_update().get(pk=document.pk)
        document.ingest_generation = locked.ingest_generation + 1
        document.status = Status.PENDING
        document.progress_done = 0
        document.progress_total = 0
        document.error = ""
        document.lease_owner, document.lease_expires, document.lease_losses = "", None, 0
        document.save(
            update_fields=[
                "ingest_generation",
                "status",
                "progress_done",
                "progress_total",
                "error",
                "lease_owner",
                "lease_expires",
                "lease_losses",
                "updated",
            ]
        )
        transaction.on_commit(request_ingestion)
    log.info("queued ingestion of document %s (generation %d)", document.pk, document.ingest_generation)


# Sets the one row's flag; a row comes back only when it was not set (or did not exist).
_REQUEST_INGESTION = (
    "INSERT INTO documents_ingestion_request (id, wanted) VALUES (1, true) "
    "ON CONFLICT (id) DO UPDATE SET wanted = true WHERE documents_ingestion_request.wanted = false "
    "RETURNING id"
)


def request_ingestion() -> None:
    """Queue an ``ingest_pending`` run for the pending documents (call it once they are
    committed), unless one is queued and has not started yet: that one will find them. The
    run clears the flag as it starts (``documents.tasks.ingest_pending``)."""
    from django_q.tasks import async_task

    with connection.cursor() as cursor:
        cursor.execute(_REQUEST_INGESTION)
        requested = cursor.fetchone() is not None
    if requested:
        async_task(INGEST_PENDING_TASK, task_name="ingest pending documents")


def _queue_ingestion(document_id: int, generation: int) -> None:
    """Queue ``ingest_document(document_id, generation)``: one document, processed alone (the
    sweep's recovered documents; call it once the generation is committed)."""
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


# --- collections -----------------------------------------------------------------------------


def save_collection(collection: Collection, groups: Iterable[Group] = ()) -> Collection:
    """Create or update ``collection`` (validated by ``CollectionForm``) with its ``groups``
    (kept only for group visibility)."""
    with transaction.atomic():
        created = collection.pk is None
        collection.save()
        collection.groups.set(list(groups) if collection.visibility == Visibility.GROUPS else [])
    log.info("%s collection %s (%s)", "created" if created else "updated", collection.public_id, collection.visibility)
    return collection


def delete_collection(collection: Collection) -> None:
    """Delete a collection: its links to documents go, the documents stay. Conversations that
    asked it keep their kind of scope and are told it is gone at their next question."""
    public_id = collection.public_id
    collection.delete()
    log.info("deleted collection %s", public_id)


def add_to_collection(collection: Collection, document: Document) -> bool:
    """Put ``document`` in ``collection``; False if it was there already. The caller checked
    that the user may change the collection and read the document."""
    _, added = Collection.documents.through.objects.get_or_create(collection=collection, document=document)
    if added:
        Collection.objects.filter(pk=collection.pk).update(updated=timezone.now())
        log.info("added document %s to collection %s", document.public_id, collection.public_id)
    return added


def remove_from_collection(collection: Collection, document: Document) -> bool:
    """Take ``document`` out of ``collection`` (the document stays); False if it was not in it."""
    removed, _ = Collection.documents.through.objects.filter(collection=collection, document=document).delete()
    if removed:
        Collection.objects.filter(pk=collection.pk).update(updated=timezone.now())
        log.info("removed document %s from collection %s", document.public_id, collection.public_id)
    return bool(removed)
