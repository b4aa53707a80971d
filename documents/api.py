"""JSON API for documents (``/api/v1/documents/``), authenticated by Bearer token or session.

- ``POST /api/v1/documents/`` — multipart ``file`` (repeat it to upload up to
  ``UPLOAD_MAX_FILES`` files at once, as large together as one file may be); optional
  ``title`` (one file only), ``visibility``
  (``private`` | ``groups`` | ``shared``, default ``private``), ``groups`` (names or ids of
  groups the caller belongs to; repeat the field or separate with commas; giving groups
  without a visibility means ``groups``) and ``collection`` (the id of a collection the caller
  may change, to put the document in). 201 with the document; the same bytes uploaded
  again by the same owner → 200 with ``"duplicate": true`` and the existing document.
  Errors: empty, corrupt or mislabeled file → 400; unsupported type → 415; over
  ``UPLOAD_MAX_BYTES`` → 413; past the owner's quota (``USER_MAX_DOCUMENTS``,
  ``USER_MAX_BYTES``) → 409 with code ``quota``. Every error body is
  ``{"error": message, "code": code}``. Several files are stored all or none (an error
  names the bad file) with the same visibility, groups and collection, and answer
  ``{"documents": [...]}`` in the order sent, each with its ``duplicate`` flag: 201 if any
  is new, else 200.
- ``GET /api/v1/documents/?page=N`` — the documents the caller may read, newest first,
  ``PAGE_SIZE`` per page, and ``ingestion``: how ingestion of all of them is going
  (``total``, ``ready``, ``pending``, ``processing``, ``failed``, ``queued`` = pending +
  processing, ``chunks_per_second`` over the last minute, and ``summary``, the line the
  documents page shows; see ``DocumentQuerySet.ingestion_activity``).
- ``GET /api/v1/documents/<id>/`` — one document.
- ``DELETE /api/v1/documents/<id>/`` — the owner, or a holder of ``documents.delete_document``
  → 204.

A document the caller may not read is a 404 whatever the method, so ids never leak; any
other reader gets 403 on DELETE. ``groups`` names only the groups the caller belongs to
(the owner and superusers see them all).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import TooManyFilesSent
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from accounts.api import ApiError, api_view
from documents import services
from documents.forms import UploadForm, groups_named, too_many_files
from documents.models import Document, Visibility
from kb_site.limits import UPLOAD_FORM_OVERHEAD

PAGE_SIZE = 50


# "quota": the request is fine, the owner's holdings are full (deleting documents resolves it).
UPLOAD_ERROR_STATUS = {"empty": 400, "invalid": 400, "unsupported": 415, "too_large": 413, "quota": 409}


def document_json(document: Document, request: HttpRequest, chunk_count: int | None = None) -> dict:
    """The API representation of ``document``."""
    if chunk_count is None:
        chunk_count = getattr(document, "chunk_count", None)
    if chunk_count is None:
        chunk_count = document.chunks.count()
    return {
        "id": str(document.public_id),
        "url": request.build_absolute_uri(reverse("api:document", args=[document.public_id])),
        "title": document.title,
        "status": document.status,
        "progress": document.progress_percent,
        "progress_done": document.progress_done,
        "progress_total": document.progress_total,
        "error": document.error,
        "chunk_count": chunk_count,
        "visibility": document.visibility,
        "groups": [group.name for group in document.groups_shown_to(request.user)],
        "original_name": document.original_name,
        "mime_type": document.mime_type,
        "size": document.size,
        "owner": document.owner.get_username(),
        "created": document.created.isoformat(),
    }


def _visible(request: HttpRequest):
    return (
        Document.objects.visible_to(request.user)
        .select_related("owner")
        .prefetch_related("groups")
        .annotate(chunk_count=Count("chunks", distinct=True))
    )


@api_view(["GET", "POST"])
def documents(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        return _upload(request)
    paginator = Paginator(_visible(request).order_by("-created", "-pk"), PAGE_SIZE)
    try:
        page = paginator.page(request.GET.get("page", 1))
    except PageNotAnInteger:
        raise ApiError("Parameter 'page' must be a positive integer.", 400) from None
    except EmptyPage:
        raise ApiError(f"There is no page {request.GET['page']}; there are {paginator.num_pages}.", 404) from None
    base = request.build_absolute_uri(reverse("api:documents"))
    return JsonResponse(
        {
            "count": paginator.count,
            "page": page.number,
            "pages": paginator.num_pages,
            "next": f"{base}?page={page.next_page_number()}" if page.has_next() else None,
            "previous": f"{base}?page={page.previous_page_number()}" if page.has_previous() else None,
            "results": [document_json(d, request) for d in page.object_list],
            "ingestion": Document.objects.visible_to(request.user).ingestion_activity().as_json(),
        }
    )


def _upload(request: HttpRequest) -> JsonResponse:
    # Refuse an oversized body before Django parses (and spools) it, with the API's JSON error.
    # Under kb_site.serve (and BodyLimitMiddleware) such a body never gets here: this is the
    # same rule for any other way of serving the application.
    try:
        content_length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        content_length = 0
    if content_length > settings.UPLOAD_MAX_BYTES + UPLOAD_FORM_OVERHEAD:
        raise ApiError(services.too_large_message("The request", content_length), 413, code="too_large")
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError("Send the file as multipart/form-data in the field 'file'.", 400, code="invalid")
    try:
        files = request.FILES
    except TooManyFilesSent:
        raise ApiError(too_many_files(), 400, code="invalid") from None
    if "file" not in files:
        raise ApiError("The multipart field 'file' is missing.", 400, code="invalid")

    # The site's upload form validates; the API only reads its own conveniences first: groups
    # by name or id, and visibility "groups" implied by naming groups.
    groups = _requested_groups(request)
    data = {
        "title": request.POST.get("title", "").strip(),
        "visibility": request.POST.get("visibility", "").strip().lower()
        or (Visibility.GROUPS if groups else Visibility.PRIVATE),
        "groups": [group.pk for group in groups],
        "collection": request.POST.get("collection", "").strip(),
    }
    if data["visibility"] != Visibility.GROUPS and groups:
        raise ApiError("'groups' only applies when visibility is 'groups'.", 400, code="invalid")
    form = UploadForm(data, files, user=request.user)
    if not form.is_valid():
        raise _form_error(form)
    try:
        results = form.upload(request.user)
    except services.UploadError as exc:
        raise ApiError(exc.message, UPLOAD_ERROR_STATUS.get(exc.code, 400), code=exc.code) from None
    # Read back as listed (owner, groups and chunk counts in three queries, however many files).
    stored = _visible(request).in_bulk([document.pk for document, _ in results])
    bodies = [
        {**document_json(stored[document.pk], request), "duplicate": not created} for document, created in results
    ]
    any_created = any(created for _, created in results)
    if len(files.getlist("file")) > 1:
        return JsonResponse({"documents": bodies}, status=201 if any_created else 200)
    response = JsonResponse(bodies[0], status=201 if any_created else 200)
    if any_created:
        response["Location"] = bodies[0]["url"]
    return response


def _form_error(form: UploadForm) -> ApiError:
    """The form's first error as an API error; the file's own codes choose the status."""
    error = next(iter(form.errors.as_data().values()))[0]
    code = error.code if error.code in UPLOAD_ERROR_STATUS else "invalid"
    return ApiError(" ".join(error.messages), UPLOAD_ERROR_STATUS[code], code=code)


def _requested_groups(request: HttpRequest) -> list[Group]:
    """The groups named in ``groups`` (names or ids, repeated or comma-separated).

    Only groups the caller belongs to (staff: any) can be chosen; any other name is reported
    as unknown, so the API does not reveal which groups exist.
    """
    wanted = [item.strip() for value in request.POST.getlist("groups") for item in value.split(",") if item.strip()]
    try:
        return groups_named(request.user, wanted)
    except ValueError as exc:
        raise ApiError(str(exc), 400, code="invalid") from None


@api_view(["GET", "DELETE"])
def document(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    found = _visible(request).filter(public_id=public_id).first()
    if found is None:
        raise ApiError("No such document.", 404)
    if request.method == "DELETE":
        if not found.allows(request.user, "delete"):
            raise ApiError("Only the document's owner or an administrator can delete it.", 403)
        services.delete_document(found)
        return HttpResponse(status=204)
    return JsonResponse(document_json(found, request))
