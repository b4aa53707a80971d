"""Pages for collections: the list, a collection's page, create, edit, delete, and adding or
removing documents (from the collection's page or a document's page).

A collection the user may not see is a 404 (so is a document they may not read); changing
one needs its owner or the model permission (``Collection.allows``): any other reader gets a
403. Inside a collection a user sees only the documents they may read
(``Collection.documents_for``).
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from documents import services
from documents.forms import CollectionForm
from documents.models import Collection, Document

# The "add a document" picker lists at most this many of the user's readable documents.
PICKER_LIMIT = 500


def visible_collection(user, public_id: uuid.UUID) -> Collection:
    """The collection ``public_id`` if ``user`` may see it; 404 otherwise."""
    return get_object_or_404(Collection.objects.visible_to(user).select_related("owner"), public_id=public_id)


def changeable_collection(user, public_id: uuid.UUID, action: str = "change") -> Collection:
    """The collection if ``user`` may ``action`` it: 404 for those who do not see it, 403 for
    other readers."""
    collection = visible_collection(user, public_id)
    if not collection.allows(user, action):
        raise PermissionDenied("Only the owner of this collection or an administrator can change it.")
    return collection


@require_GET
@login_required
def collection_list(request: HttpRequest) -> HttpResponse:
    readable = Document.objects.visible_to(request.user).values("pk")
    collections = (
        Collection.objects.visible_to(request.user)
        .select_related("owner")
        .annotate(document_count=Count("documents", filter=Q(documents__in=readable), distinct=True))
        .order_by("name", "pk")
    )
    return render(request, "documents/collections.html", {"collections": collections})


@require_http_methods(["GET", "POST"])
@login_required
def collection_new(request: HttpRequest) -> HttpResponse:
    form = CollectionForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        collection = form.save()
        messages.success(request, f"Created the collection “{collection.name}”.")
        return redirect("documents:collection", public_id=collection.public_id)
    status = 400 if form.errors else 200
    return render(request, "documents/collection_form.html", {"form": form, "collection": None}, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def collection_edit(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    collection = changeable_collection(request.user, public_id)
    form = CollectionForm(request.POST or None, instance=collection, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved “{collection.name}”.")
        return redirect("documents:collection", public_id=collection.public_id)
    status = 400 if form.errors else 200
    context = {"form": form, "collection": collection}
    return render(request, "documents/collection_form.html", context, status=status)


@require_GET
@login_required
def collection_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    collection = visible_collection(request.user, public_id)
    documents = collection.documents_for(request.user).select_related("owner").order_by("title", "pk")
    can_change = collection.allows(request.user, "change")
    addable = []
    if can_change:
        addable = (
            Document.objects.visible_to(request.user)
            .exclude(pk__in=collection.documents.values("pk"))
            .order_by("title", "pk")
            .only("public_id", "title")[:PICKER_LIMIT]
        )
    context = {
        "collection": collection,
        "documents": documents,
        "can_change": can_change,
        "can_delete": collection.allows(request.user, "delete"),
        "addable": addable,
        "groups": collection.groups_shown_to(request.user),
    }
    return render(request, "documents/collection_detail.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def collection_delete(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    collection = changeable_collection(request.user, public_id, "delete")
    if request.method == "POST":
        name = collection.name
        services.delete_collection(collection)
        messages.success(request, f"Deleted the collection “{name}”. Its documents are still here.")
        return redirect("documents:collections")
    return render(request, "documents/collection_confirm_delete.html", {"collection": collection})


@require_POST
@login_required
def collection_add(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The collection page's picker: add the document named by ``document`` (its id)."""
    collection = changeable_collection(request.user, public_id)
    document = Document.objects.visible_to(request.user).filter(public_id=_uuid(request.POST.get("document"))).first()
    if document is None:
        messages.error(request, "Choose a document you can read.")
    else:
        _add(request, collection, document)
    return redirect("documents:collection", public_id=collection.public_id)


@require_POST
@login_required
def add_to_collection(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The document page's picker: put this document in the collection named by ``collection``."""
    document = get_object_or_404(Document.objects.visible_to(request.user), public_id=public_id)
    collection = (
        Collection.objects.changeable_by(request.user).filter(public_id=_uuid(request.POST.get("collection"))).first()
    )
    if collection is None:
        messages.error(request, "Choose one of your collections.")
    else:
        _add(request, collection, document)
    return redirect("documents:detail", public_id=document.public_id)


def _add(request: HttpRequest, collection: Collection, document: Document) -> None:
    if services.add_to_collection(collection, document):
        messages.success(request, f"Added “{document.title}” to “{collection.name}”.")
    else:
        messages.info(request, f"“{document.title}” is in “{collection.name}” already.")


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value or ""))
    except ValueError:
        return None


@require_POST
@login_required
def collection_remove(request: HttpRequest, public_id: uuid.UUID, document_id: uuid.UUID) -> HttpResponse:
    collection = changeable_collection(request.user, public_id)
    document = get_object_or_404(collection.documents_for(request.user), public_id=document_id)
    services.remove_from_collection(collection, document)
    messages.success(request, f"Removed “{document.title}” from “{collection.name}”; the document itself stays.")
    return redirect("documents:collection", public_id=collection.public_id)
