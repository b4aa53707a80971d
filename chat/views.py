"""The chat pages: conversation list, one conversation, rename/delete, settings, export, feedback.

Every view reads conversations through ``Conversation.objects.for_user``: someone else's
conversation (or message) is a 404, whatever the method. Answers themselves stream over the
websocket (``chat.consumers``), not through these views.
"""

from __future__ import annotations

import json
import logging
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from chat import llm, services
from chat.forms import FeedbackForm, NewConversationForm, RenameForm, ScopeForm
from chat.models import Conversation, Message, Role, SearchTooLong
from documents.models import Collection, Scope, ScopeKind, ScopeUnavailable

log = logging.getLogger(__name__)

SIDEBAR_LIMIT = 100
PENDING_QUESTION_KEY = "chat_pending_question"
# Stands in for a message id in URL templates handed to chat.js.
_ID_PLACEHOLDER = uuid.UUID(int=0)


def owned_conversation(user, public_id: uuid.UUID) -> Conversation:
    """The conversation ``public_id`` if ``user`` owns it; 404 otherwise."""
    conversation = Conversation.objects.owned(user, public_id)
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


def owned_answer(user, public_id: uuid.UUID) -> Message:
    """The assistant message ``public_id`` in one of ``user``'s conversations; 404 otherwise."""
    answers = Message.objects.filter(conversation__in=Conversation.objects.for_user(user), role=Role.ASSISTANT)
    return get_object_or_404(answers.select_related("conversation"), public_id=public_id)


def _sidebar(request: HttpRequest) -> dict:
    query = request.GET.get("q", "").strip()
    conversations = Conversation.objects.for_user(request.user)
    try:
        conversations = conversations.search(query)
    except SearchTooLong as exc:
        messages.error(request, str(exc))  # and list every conversation, as without a search
        query = ""
    return {"conversations": conversations.order_by("-updated")[:SIDEBAR_LIMIT], "q": query}


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    context = _sidebar(request)
    context.update(
        conversation=None,
        # The start page's scope: everything, or one of the collections the user sees.
        start_collections=Collection.objects.visible_to(request.user).order_by("name", "pk")[:SIDEBAR_LIMIT],
        chat_config={"conversation": None, "maxQuestionChars": services.QUESTION_MAX_CHARS},
    )
    return render(request, "chat/chat.html", context)


@require_POST
@login_required
def new_conversation(request: HttpRequest) -> HttpResponse:
    """Start a conversation; a question typed on the start page is asked when it opens."""
    form = NewConversationForm(request.POST)
    if not form.is_valid():
        if "question" in form.errors:
            messages.error(request, " ".join(form.errors["question"]))
        else:
            messages.error(request, "That is not the id of a collection or a document.")
        return redirect("chat:home")
    scope = _chosen_scope(request, form.scope_value())
    if scope is None:
        return redirect("chat:home")
    conversation = services.create_conversation(request.user, scope=scope)
    if form.cleaned_data["question"]:
        request.session[PENDING_QUESTION_KEY] = {
            "conversation": str(conversation.public_id),
            "question": form.cleaned_data["question"],
        }
    return redirect("chat:conversation", conversation.public_id)


@require_POST
@login_required
def change_scope(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The header's scope picker: ask everything, a collection or a document from now on."""
    conversation = owned_conversation(request.user, public_id)
    form = ScopeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose what this conversation should ask.")
        return redirect("chat:conversation", conversation.public_id)
    scope = _chosen_scope(request, form.scope_value())
    if scope is not None:
        services.set_conversation_scope(conversation, scope)
        messages.success(request, f"This conversation now asks: {scope.name}.")
    return redirect("chat:conversation", conversation.public_id)


def _chosen_scope(request: HttpRequest, value: dict) -> Scope | None:
    """The scope a page's form chose; None (with a message to show) when malformed, and a
    404 when the user may not read it."""
    try:
        return Scope.resolve(request.user, value)
    except ValueError as exc:
        messages.error(request, str(exc))
        return None
    except ScopeUnavailable as exc:
        raise Http404(str(exc)) from None


def _scope_picker(user, scope: dict) -> tuple[list[tuple[str, str]], str]:
    """The header picker's choices and its selected value, for the conversation's scope as
    ``Conversation.scope_json`` shows it: everything, each collection ``user`` sees, and the
    conversation's own document when it asks one."""
    selected = f"{scope['kind']}:{scope['id']}" if scope["id"] else ScopeKind.ALL.value
    choices = [(ScopeKind.ALL.value, ScopeKind.ALL.label)]
    if scope["kind"] == ScopeKind.DOCUMENT and scope["id"]:
        choices.append((selected, f"Document: {scope['name']}"))
    collections = Collection.objects.visible_to(user).order_by("name", "pk")[:SIDEBAR_LIMIT]
    choices += [(f"collection:{c.public_id}", f"Collection: {c.name}") for c in collections]
    return choices, selected


@require_GET
@login_required
def conversation_page(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    conversation = owned_conversation(request.user, public_id)
    # Each cited passage as this reader may see it now: one query for all the citations.
    history = conversation.messages.order_by("created", "pk").with_citations_for(request.user)
    pending = request.session.pop(PENDING_QUESTION_KEY, None)
    pending_question = (
        pending["question"]
        if isinstance(pending, dict) and pending.get("conversation") == str(conversation.public_id)
        else ""
    )
    scope = conversation.scope_json(request.user)
    scope_choices, scope_selected = _scope_picker(request.user, scope)
    context = _sidebar(request)
    context.update(
        conversation=conversation,
        history=history,
        rename_form=RenameForm(initial={"title": conversation.title}),
        scope=scope,
        scope_choices=scope_choices,
        scope_selected=scope_selected,
        params=llm.remembered_params(conversation.settings).to_dict(),
        max_tokens_limit=settings.LLM_MAX_TOKENS,
        chat_config={
            "conversation": str(conversation.public_id),
            "socketPath": conversation.socket_path,
            "settingsUrl": reverse("chat:settings", args=[conversation.public_id]),
            "feedbackUrl": reverse("chat:feedback", args=[_ID_PLACEHOLDER]),
            # A cited passage on its document's page (sources carry the document's id).
            "documentUrl": reverse("documents:detail", args=[_ID_PLACEHOLDER]),
            "idPlaceholder": str(_ID_PLACEHOLDER),
            "pendingQuestion": pending_question,
            "maxQuestionChars": services.QUESTION_MAX_CHARS,
        },
    )
    return render(request, "chat/chat.html", context)


@require_POST
@login_required
def rename(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    conversation = owned_conversation(request.user, public_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        try:
            services.rename_conversation(conversation, form.cleaned_data["title"])
            messages.success(request, "Conversation renamed.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    else:
        messages.error(request, "Title: " + " ".join(form.errors["title"]))
    return redirect("chat:conversation", conversation.public_id)


@require_POST
@login_required
def delete(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    conversation = owned_conversation(request.user, public_id)
    title = conversation.display_title
    services.delete_conversation(conversation)
    messages.success(request, f"Deleted “{title}”.")
    return redirect("chat:home")


@require_POST
@login_required
def update_settings(request: HttpRequest, public_id: uuid.UUID) -> JsonResponse:
    """Save the settings panel: a JSON object of generation parameters → the saved values,
    or 400 ``{"error": message}`` with nothing changed."""
    conversation = owned_conversation(request.user, public_id)
    try:
        raw = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "Send the settings as a JSON object."}, status=400)
    if not isinstance(raw, dict):
        return JsonResponse({"error": "Send the settings as a JSON object."}, status=400)
    try:
        params = llm.GenerationParams.from_dict(raw).to_dict()
    except llm.InvalidParams as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    services.update_conversation_settings(conversation, params)
    return JsonResponse({"settings": params})


@require_GET
@login_required
def export(request: HttpRequest, public_id: uuid.UUID, fmt: str) -> HttpResponse:
    conversation = owned_conversation(request.user, public_id)
    filename = f"{slugify(conversation.display_title)[:60] or 'conversation'}.{fmt}"
    if fmt == "md":
        response = HttpResponse(services.export_markdown(conversation), content_type="text/markdown; charset=utf-8")
    else:
        body = json.dumps(services.export_json(conversation), ensure_ascii=False, indent=2)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_POST
@login_required
def feedback(request: HttpRequest, public_id: uuid.UUID) -> JsonResponse:
    """Rate an answer: form fields ``value`` (up | down | none) and optional ``comment``."""
    message = owned_answer(request.user, public_id)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in form.errors.items())
        return JsonResponse({"error": errors}, status=400)
    services.set_feedback(message, form.cleaned_data["value"], form.cleaned_data["comment"])
    return JsonResponse({"feedback": message.feedback_label, "comment": message.feedback_comment})
