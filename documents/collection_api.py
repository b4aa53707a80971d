"""JSON API for collections (``/api/v1/collections/``), by Bearer token or session.

- ``GET /api/v1/collections/`` — the collections the caller may see, by name, each with
  ``document_count``: the documents in it the caller may read.
- ``POST /api/v1/collections/`` — JSON ``{"name", "description", "visibility", "groups"}``
  (``visibility`` ``private`` | ``groups`` | ``shared``, default ``private``; ``groups``: names
  or ids of groups the caller belongs to) → 201 with the collection.
- ``GET /api/v1/collections/<id>/`` — one collection with ``documents``: those in it the caller
  may read (a collection never widens access), with their status.
- ``PATCH /api/v1/collections/<id>/`` — any of the fields above → the collection.
- ``DELETE /api/v1/collections/<id>/`` → 204; its documents stay.
- ``POST /api/v1/collections/<id>/documents/`` — ``{"document": "<uuid>"}`` → 201 (200 when it
  was in already). A document the caller may not read is a 404.
- ``DELETE /api/v1/collections/<id>/documents/<document id>/`` → 204.

A collection the caller may not see is a 404 whatever the method; changing one needs its
owner (or a holder of ``documents.change_collection`` / ``delete_collection``): anyone else
who sees it gets 403. Errors: ``{"error": message}``.
"""

from __future__ import annotations

import json
import uuid

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from accounts.api import ApiError, api_view
from documents import services
from documents.forms import CollectionForm, groups_named
from documents.models import Collection, Document

FIELDS = ("name", "description", "visibility", "groups")


def collection_json(collection: Collection, request: HttpRequest) -> dict:
    data = {
        "id": str(collection.public_id),
        "url": request.build_absolute_uri(reverse("api:collection", args=[collection.public_id])),
        "name": collection.name,
        "description": collection.description,
        "visibility": collection.visibility,
        "groups": [group.name for group in collection.groups_shown_to(request.user)],
        "owner": collection.owner.get_username(),
        "created": collection.created.isoformat(),
        "updated": collection.updated.isoformat(),
    }
    if hasattr(collection, "document_count"):
        data["document_count"] = collection.document_count
    return data


def _visible(request: HttpRequest):
    readable = Document.objects.visible_to(request.user).values("pk")
    return (
        Collection.objects.visible_to(request.user)
        .select_related("owner")
        .prefetch_related("groups")
        .annotate(document_count=Count("documents", filter=Q(documents__in=readable), distinct=True))
    )


def _get(request: HttpRequest, public_id: uuid.UUID, action: str | None = None) -> Collection:
    found = _visible(request).filter(public_id=public_id).first()
    if found is None:
        raise ApiError("Collection not found.", 404)
    if action is not None and not found.allows(request.user, action):
        raise ApiError(f"Only the collection's owner or an administrator can {action} it.", 403)
    return found


def _body(request: HttpRequest) -> dict:
    if request.content_type != "application/json":
        raise ApiError("Send a JSON object (Content-Type: application/json).")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ApiError("The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("The request body must be a JSON object.")
    return body


def _save(request: HttpRequest, instance: Collection | None) -> Collection:
    """Validate the body's fields over ``instance``'s (a new collection: the defaults) and save."""
    body = _body(request)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ApiError(f"Unknown field {unknown[0]!r}: a collection has {', '.join(FIELDS)}.")
    groups = body.get("groups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str | int) for g in groups)):
        raise ApiError('"groups" must be a list of group names or ids.')
    current = {
        "name": instance.name if instance else "",
        "description": instance.description if instance else "",
        "visibility": instance.visibility if instance else "private",
        "groups": list(instance.groups.all()) if instance else [],
    }
    for field in ("name", "description", "visibility"):
        if field in body and not isinstance(body[field], str):
            raise ApiError(f'"{field}" must be a string.')
    try:
        chosen = groups_named(request.user, groups) if groups is not None else current["groups"]
    except ValueError as exc:
        raise ApiError(str(exc)) from None
    data = {**current, **{k: body[k] for k in ("name", "description", "visibility") if k in body}}
    if groups is not None and groups and "visibility" not in body:
        data["visibility"] = "groups"  # naming groups shares with them, as for uploads
    data["groups"] = [group.pk for group in chosen]
    form = CollectionForm(data, instance=instance, user=request.user)
    if not form.is_valid():
        raise ApiError(" ".join(next(iter(form.errors.values()))))
    return form.save()


@api_view(["GET", "POST"])
def collections(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        created = _save(request, None)
        body = collection_json(_get(request, created.public_id), request)
        response = JsonResponse(body, status=201)
        response["Location"] = body["url"]
        return response
    found = _visible(request).order_by("name", "pk")
    return JsonResponse({"collections": [collection_json(c, request) for c in found]})


@api_view(["GET", "PATCH", "DELETE"])
def collection(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    if request.method == "DELETE":
        services.delete_collection(_get(request, public_id, "delete"))
        return HttpResponse(status=204)
    if request.method == "PATCH":
        _save(request, _get(request, public_id, "change"))
    found = _get(request, public_id)
    data = collection_json(found, request)
    data["documents"] = [
        {"id": str(d.public_id), "title": d.title, "status": d.status}
        for d in found.documents_for(request.user).order_by("title", "pk")
    ]
    return JsonResponse(data)


@api_view(["POST"])
def collection_documents(request: HttpRequest, public_id: uuid.UUID) -> JsonResponse:
    found = _get(request, public_id, "change")
    raw = _body(request).get("document")
    try:
        document_id = uuid.UUID(str(raw))
    except ValueError:
        raise ApiError('"document" must be the id (a UUID) of a document.') from None
    document = Document.objects.visible_to(request.user).filter(public_id=document_id).first()
    if document is None:
        raise ApiError("Document not found.", 404)
    added = services.add_to_collection(found, document)
    body = {"collection": str(found.public_id), "document": str(document.public_id), "added": added}
    return JsonResponse(body, status=201 if added else 200)


@api_view(["DELETE"])
def collection_document(request: HttpRequest, public_id: uuid.UUID, document_id: uuid.UUID) -> HttpResponse:
    found = _get(request, public_id, "change")
    document = found.documents_for(request.user).filter(public_id=document_id).first()
    if document is None:
        raise ApiError("That document is not in this collection.", 404)
    services.remove_from_collection(found, document)
    return HttpResponse(status=204)
