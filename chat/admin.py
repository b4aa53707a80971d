"""Read-only review of saved conversations.

Active staff members holding ``chat.review_conversations`` (superusers hold every
permission) may read every user's conversations, messages and citations here; the staff
flag alone does not open them. Nobody can add or edit them, and only superusers may delete a
conversation (for example on a user's request).

A reviewer is a reader like any other: a cited passage (and an evidence quote taken from
it) is shown only if the reviewer may read its document (``CitationQuerySet.for_reader``).
A reviewer who must see every passage also needs ``documents.read_all_documents``.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from chat.models import REVIEW_CONVERSATIONS, Citation, Conversation, Feedback, Message, Role

# What a reviewer sees of a cited passage whose document they may not read.
NOT_AVAILABLE = "source not available to you (its document was deleted, or you may not read it)"


def may_review(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm(REVIEW_CONVERSATIONS)


class ReadOnlyMixin:
    """No add, no change; view with ``chat.review_conversations``; delete for superusers only."""

    def has_module_permission(self, request) -> bool:
        return may_review(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return may_review(request.user)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class FeedbackFilter(admin.SimpleListFilter):
    """Conversations with at least one answer rated up / down."""

    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request, model_admin):
        return [("up", "Has thumbs up"), ("down", "Has thumbs down"), ("any", "Has any feedback")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "up":
            return queryset.filter(messages__feedback=Feedback.UP).distinct()
        if value == "down":
            return queryset.filter(messages__feedback=Feedback.DOWN).distinct()
        if value == "any":
            return queryset.filter(messages__feedback__in=[Feedback.UP, Feedback.DOWN]).distinct()
        return queryset


class MessageInline(ReadOnlyMixin, admin.StackedInline):
    model = Message
    extra = 0
    show_change_link = True  # the message's own page lists its citations
    fields = [
        "role",
        "status",
        "created",
        "content",
        "error",
        "sources",
        "model",
        "params",
        ("prompt_tokens", "cached_tokens", "completion_tokens", "ttft_ms", "tokens_per_s"),
        ("feedback", "feedback_comment"),
    ]
    readonly_fields = fields[:8] + list(fields[8]) + list(fields[9])
    ordering = ["created", "pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_citations_for(request.user)

    @admin.display(description="citations")
    def sources(self, message: Message) -> str:
        if message.role != Role.ASSISTANT:
            return "—"
        citations = list(message.citations.all())
        if not citations:
            return "none"
        url = reverse("admin:chat_message_change", args=[message.pk])
        titles = ", ".join(f"[{c.n}] {c.title if c.is_readable else NOT_AVAILABLE}" for c in citations)
        return format_html('{} — <a href="{}">read the passages</a>', titles, url)


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["display_title", "user", "message_count", "created", "updated"]
    # What each conversation searched (everything, a collection or a document); the scope's
    # name is not shown: the reviewer may not be allowed to read it.
    list_filter = [("user", admin.RelatedOnlyFieldListFilter), "scope_kind", "created", "updated", FeedbackFilter]
    search_fields = ["title", "messages__content", "user__username"]
    date_hierarchy = "created"
    list_select_related = ["user"]
    fields = ["public_id", "user", "title", "scope_kind", "created", "updated", "settings"]
    readonly_fields = fields
    inlines = [MessageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count

    @admin.display(description="title", ordering="title")
    def display_title(self, conversation: Conversation) -> str:
        return conversation.display_title

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def get_deleted_objects(self, objs, request):
        # Messages and citations are not deletable one by one (MessageAdmin is read-only), but
        # they go with their conversation: do not let that block a superuser's delete.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected


class GroundingFilter(admin.SimpleListFilter):
    """Answers by the grounding check: with sentences the sources do not support, or fully supported."""

    title = "grounding"
    parameter_name = "grounding"

    def lookups(self, request, model_admin):
        return [("unsupported", "Has unsupported sentences"), ("supported", "Fully supported")]

    def queryset(self, request, queryset):
        # jsonb containment: the grounding list holds an element with "supported": false.
        unsupported = Q(grounding__contains=[{"supported": False}])
        if self.value() == "unsupported":
            return queryset.filter(unsupported)
        if self.value() == "supported":
            return queryset.filter(role=Role.ASSISTANT).exclude(grounding=[]).exclude(unsupported)
        return queryset


class CitationInline(ReadOnlyMixin, admin.StackedInline):
    """The passages an answer cited, each only if the reviewer may read its document."""

    model = Citation
    extra = 0
    fields = [("n", "score"), "passage_title", "passage_location", "passage_document", "passage_text"]
    readonly_fields = ["n", "score", "passage_title", "passage_location", "passage_document", "passage_text"]
    ordering = ["n"]

    def get_queryset(self, request):
        return super().get_queryset(request).for_reader(request.user)

    @admin.display(description="title")
    def passage_title(self, citation: Citation) -> str:
        return citation.title if citation.is_readable else NOT_AVAILABLE

    @admin.display(description="location")
    def passage_location(self, citation: Citation) -> str:
        return citation.location if citation.is_readable else "—"

    @admin.display(description="document")
    def passage_document(self, citation: Citation) -> str:
        if not citation.is_readable:
            return "—"
        url = reverse("documents:detail", args=[citation.document_public_id])
        return format_html('<a href="{}">{}</a>', url, citation.document_public_id)

    @admin.display(description="text")
    def passage_text(self, citation: Citation) -> str:
        return citation.text if citation.is_readable else "—"


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["__str__", "conversation_link", "user", "role", "status", "feedback", "created"]
    list_filter = [
        "role",
        "status",
        "feedback",
        GroundingFilter,
        "finish_reason",
        ("conversation__user", admin.RelatedOnlyFieldListFilter),
        "created",
    ]
    search_fields = ["content", "feedback_comment", "conversation__title"]
    date_hierarchy = "created"
    list_select_related = ["conversation__user"]
    fields = [
        "public_id",
        "conversation_link",
        "role",
        "status",
        "created",
        "content",
        "evidence_quote",
        "grounding_check",
        "finish_reason",
        "error",
        "model",
        "params",
        ("prompt_tokens", "cached_tokens", "completion_tokens", "ttft_ms", "tokens_per_s"),
        ("feedback", "feedback_comment"),
    ]
    # Review is read-only: every field shown is read-only.
    readonly_fields = [name for row in fields for name in (row if isinstance(row, tuple) else (row,))]
    inlines = [CitationInline]

    def get_queryset(self, request):
        # The evidence quote is shown only with its citation readable (Message.shown_evidence).
        return super().get_queryset(request).with_citations_for(request.user)

    @admin.display(description="conversation", ordering="conversation__title")
    def conversation_link(self, message: Message) -> str:
        url = reverse("admin:chat_conversation_change", args=[message.conversation_id])
        return format_html('<a href="{}">{}</a>', url, message.conversation.display_title)

    @admin.display(description="user", ordering="conversation__user__username")
    def user(self, message: Message) -> str:
        return message.conversation.user.get_username()

    @admin.display(description="evidence")
    def evidence_quote(self, message: Message) -> str:
        evidence = message.shown_evidence
        if not evidence:
            return f"[{message.evidence.get('source')}] {NOT_AVAILABLE}" if message.evidence else "—"
        return f"“{evidence.get('text', '')}” [{evidence.get('source')}]"

    @admin.display(description="grounding")
    def grounding_check(self, message: Message) -> str:
        if not message.grounding:
            return "—"
        rows = format_html_join(
            "",
            '<li class="{}">{} <strong>{}</strong></li>',
            (
                (
                    "supported" if sentence.get("supported") else "unsupported",
                    sentence.get("text", ""),
                    ("supported " + " ".join(f"[{n}]" for n in sentence.get("sources", []))).strip()
                    if sentence.get("supported")
                    else "NOT FOUND IN THE SOURCES",
                )
                for sentence in message.grounding
            ),
        )
        return format_html("<ol>{}</ol>", rows)
