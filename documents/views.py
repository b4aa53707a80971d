"""Pages for users: the documents list, upload, a document's page with its chunks, delete, re-index.

Every page reads documents through ``Document.objects.visible_to``: a document the user may
not read is a 404. Changing one (delete, re-index) also needs its owner or the model
permission (``Document.allows``): any other reader gets a 403.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, TooManyFilesSent
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from documents import services
from documents.forms import UploadForm, too_many_files
from documents.models import Collection, Document

log = logging.getLogger(__name__)

DOCUMENTS_PER_PAGE = 50
CHUNKS_PER_PAGE = 25


def readable_document(user, public_id: uuid.UUID) -> Document:
    """The document ``public_id`` if ``user`` may read it; 404 otherwise (existence is not revealed)."""
    documents = Document.objects.visible_to(user).select_related("owner")
    return get_object_or_404(documents, public_id=public_id)


def modifiable_document(user, public_id: uuid.UUID, action: str) -> Document:
    """The document ``public_id`` if ``user`` may ``action`` it ("change" or "delete", see
    ``Document.allows``): 404 for non-readers, 403 for other readers."""
    document = readable_document(user, public_id)
    if not document.allows(user, action):
        raise PermissionDenied("Only the owner of this document or an administrator can change it.")
    return document


@require_GET
@login_required
def document_list(request: HttpRequest) -> HttpResponse:
    documents = (
        Document.objects.visible_to(request.user)
        .select_related("owner")
        .annotate(chunk_count=Count("chunks", distinct=True))
        .order_by("-created", "-pk")
    )
    page = Paginator(documents, DOCUMENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "documents": page.object_list,
        "activity": Document.objects.visible_to(request.user).ingestion_activity(),
    }
    return render(request, "documents/list.html", context)


@require_GET
@login_required
def activity(request: HttpRequest) -> HttpResponse:
    """The ingestion figure of the documents list ("1,240 of 5,183 ready, 3,943 in the queue,
    40 chunks/s") for the documents the user may read; polled by htmx every 2 s while some of
    them are queued, one query each time."""
    context = {"activity": Document.objects.visible_to(request.user).ingestion_activity()}
    return render(request, "documents/_activity.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def upload(request: HttpRequest) -> HttpResponse:
    refused = ""  # a body Django would not parse: shown above an empty form
    if request.method == "POST":
        try:
            form = UploadForm(request.POST, request.FILES, user=request.user)
        except TooManyFilesSent:
            form, refused = UploadForm(user=request.user), too_many_files()
    else:
        # "Upload documents into this collection" links here with ?collection=<id>.
        form = UploadForm(user=request.user, initial={"collection": request.GET.get("collection")})
    if form.is_bound and form.is_valid():
        try:
            results = form.upload(request.user)
        except services.UploadError as exc:
            form.add_error("file", exc.message)
        else:
            return _uploaded(request, results)
    status = 400 if form.errors or refused else 200
    context = {
        "form": form,
        "refused": refused,
        "upload_limit": settings.UPLOAD_MAX_BYTES,
        "max_files": settings.UPLOAD_MAX_FILES,
    }
    return render(request, "documents/upload.html", context, status=status)


def _uploaded(request: HttpRequest, results: list[tuple[Document, bool]]) -> HttpResponse:
    """Say what an upload stored: one file → its page; several → the documents list."""
    if len(results) == 1:
        document, created = results[0]
        if created:
            messages.success(request, f"Uploaded “{document.title}”. It will be searchable once it is ready.")
        else:
            messages.info(request, f"You already uploaded this file as “{document.title}”.")
        return redirect("documents:detail", public_id=document.public_id)
    created = sum(1 for _, is_new in results if is_new)
    again = len(results) - created
    if created == 1:
        text = "Uploaded 1 document; it will be searchable once it is ready."
    else:
        text = f"Uploaded {created:,} documents; they will be searchable once they are ready."
    if not created:
        text = "You had uploaded all of these files already."
    elif again:
        text += f" {again:,} of the files {pluralize(again, 'was,were')} uploaded already."
    messages.success(request, text)
    return redirect("documents:list")


@require_GET
@login_required
def detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """A document's facts and its chunks, 25 a page.

    ``?chunk=N`` opens the page that holds the chunk of ordinal N (a citation's link), and
    ``hl=start-end`` (several: ``hl=0-40,80-120``; code-point offsets, end exclusive) marks
    those spans of that chunk's text. Values that are malformed or out of range are ignored.
    """
    document = readable_document(request.user, public_id)
    chunks = document.chunks.only("ordinal", "text", "token_count", "location", "page", "document_id").order_by(
        "ordinal"
    )
    target = _int_param(request.GET.get("chunk"))
    page_number = request.GET.get("page")
    if target is not None and "page" not in request.GET and chunks.filter(ordinal=target).exists():
        page_number = chunks.filter(ordinal__lt=target).count() // CHUNKS_PER_PAGE + 1
    page = Paginator(chunks, CHUNKS_PER_PAGE).get_page(page_number)
    for chunk in page.object_list:
        if chunk.ordinal == target:
            chunk.is_target = True
            chunk.segments = _marked_segments(chunk.text, request.GET.get("hl", ""))
    context = {
        "document": document,
        "page": page,
        "chunks": page.object_list,
        "chunk_count": page.paginator.count,
        "can_reindex": document.allows(request.user, "change"),
        "can_delete": document.allows(request.user, "delete"),
        "groups": document.groups_shown_to(request.user),
        "collections": Collection.objects.visible_to(request.user).filter(documents=document).order_by("name", "pk"),
        "collection_choices": Collection.objects.changeable_by(request.user)
        .exclude(documents=document)
        .order_by("name", "pk"),
    }
    return render(request, "documents/detail.html", context)


def _int_param(value: str | None) -> int | None:
    """A non-negative integer query parameter, or None for anything else."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


def _marked_segments(text: str, spans: str) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, marked) pairs along ``spans`` ("start-end,start-end"); the
    template escapes every piece. Spans that are malformed, empty, out of range or overlap an
    earlier one are dropped. Offsets count code points, as Python's str does."""
    ranges = []
    for part in spans.split(",")[:20]:
        start, _, end = part.partition("-")
        start, end = _int_param(start), _int_param(end)
        if start is not None and end is not None and start < end <= len(text):
            ranges.append((start, end))
    segments, last = [], 0
    for start, end in sorted(ranges):
        if start < last:
            continue
        if start > last:
            segments.append((text[last:start], False))
        segments.append((text[start:end], True))
        last = end
    if last < len(text):
        segments.append((text[last:], False))
    return segments


@require_GET
@login_required
def status(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The status badge + progress bar, polled by htmx every 2 s while the document is busy.

    With ``?reload=1`` (the document page), a document that has finished asks htmx to reload
    the page so its chunks appear.
    """
    document = readable_document(request.user, public_id)
    response = render(request, "documents/_status.html", {"document": document, "reload": "reload" in request.GET})
    if request.GET.get("reload") and not document.is_busy:
        response["HX-Refresh"] = "true"
    return response


@require_http_methods(["GET", "POST"])
@login_required
def delete(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    document = modifiable_document(request.user, public_id, "delete")
    if request.method == "POST":
        title = document.title
        services.delete_document(document)
        messages.success(request, f"Deleted “{title}”.")
        return redirect("documents:list")
    return render(request, "documents/confirm_delete.html", {"document": document})


@require_POST
@login_required
def reindex(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    document = modifiable_document(request.user, public_id, "change")
    services.reindex_document(document)
    messages.success(request, f"Re-indexing “{document.title}”.")
    return redirect("documents:detail", public_id=document.public_id)
