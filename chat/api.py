"""JSON API for conversations (``/api/v1/conversations/``), by Bearer token or session.

- ``POST /api/v1/conversations/`` — optional JSON ``{"title": "...", "scope": {...}}`` (or a
  ``title`` form field) → 201
  ``{"id": uuid, "title", "created", "updated", "url", "socket", "scope"}``. The socket path is
  where to ask questions (docs/websocket-protocol.md). ``scope``: ``{}`` (everything the caller
  may read, the default), ``{"collection": uuid}`` or ``{"document": uuid}``; one the caller
  may not read is a 404.
- ``GET /api/v1/conversations/?q=text`` — the caller's conversations, most recent first
  (optionally those whose title or messages contain ``text``, at most 200 characters:
  longer is a 400).
- ``GET /api/v1/conversations/<id>/`` — one conversation with its messages; answers carry
  their citations, sampling params, stats, status and feedback.
- ``PATCH /api/v1/conversations/<id>/`` — ``{"title": "..."}`` and/or ``{"scope": {...}}``
  → the conversation as ``GET`` shows it.
- ``DELETE /api/v1/conversations/<id>/`` — 204.

Another user's conversation is a 404 whatever the method. Errors: ``{"error": message}``.
"""

from __future__ import annotations

import json
import uuid

from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from accounts.api import ApiError, api_view
from chat import services
from chat.models import Conversation, SearchTooLong
from documents.search_api import resolve_scope

LIST_LIMIT = 200


def conversation_summary(conversation: Conversation, request: HttpRequest) -> dict:
    data = {
        "id": str(conversation.public_id),
        "title": conversation.display_title,
        "created": conversation.created.isoformat(),
        "updated": conversation.updated.isoformat(),
        "url": request.build_absolute_uri(reverse("chat_api:conversation", args=[conversation.public_id])),
        "socket": conversation.socket_path,
    }
    if hasattr(conversation, "message_count"):
        data["message_count"] = conversation.message_count
    return data


def _get_owned(request: HttpRequest, public_id: uuid.UUID) -> Conversation:
    conversation = Conversation.objects.owned(request.user, public_id)
    if conversation is None:
        raise ApiError("Conversation not found.", 404)
    return conversation


def _body(request: HttpRequest) -> dict:
    """A JSON object body, or form fields when the request is not JSON."""
    if request.content_type != "application/json":
        return request.POST.dict()
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise ApiError("The request body must be JSON.") from exc
    if not isinstance(body, dict):
        raise ApiError("The request body must be a JSON object.")
    return body


@api_view(["GET", "POST"])
def conversations(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        body = _body(request)
        title = body.get("title", "")
        if not isinstance(title, str):
            raise ApiError('"title" must be a string.')
        scope = resolve_scope(request.user, body.get("scope"))
        try:
            conversation = services.create_conversation(request.user, title, scope)
        except ValidationError as exc:
            raise ApiError(" ".join(exc.messages)) from exc
        data = conversation_summary(conversation, request)
        data["scope"] = conversation.scope_json(request.user)
        return JsonResponse(data, status=201)
    try:
        found = Conversation.objects.for_user(request.user).search(request.GET.get("q", ""))
    except SearchTooLong as exc:
        raise ApiError(str(exc), 400) from None
    found = found.annotate(message_count=Count("messages")).order_by("-updated")[:LIST_LIMIT]
    return JsonResponse({"conversations": [conversation_summary(c, request) for c in found]})


@api_view(["GET", "PATCH", "DELETE"])
def conversation(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    found = _get_owned(request, public_id)
    if request.method == "DELETE":
        services.delete_conversation(found)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        body = _body(request)
        unknown = sorted(set(body) - {"title", "scope"})
        if unknown:
            raise ApiError(f'Unknown field {unknown[0]!r}: a conversation changes its "title" and "scope".')
        if "title" in body and not isinstance(body["title"], str):
            raise ApiError('"title" must be a string.')
        # Both are checked before either is written: a refused request changes nothing.
        scope = resolve_scope(request.user, body["scope"]) if "scope" in body else None
        if "title" in body:
            try:
                services.rename_conversation(found, body["title"])
            except ValidationError as exc:
                raise ApiError(" ".join(exc.messages)) from exc
        if scope is not None:
            services.set_conversation_scope(found, scope)
    data = services.export_json(found)
    data["socket"] = found.socket_path
    return JsonResponse(data)
