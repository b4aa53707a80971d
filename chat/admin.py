"""Read-only review of saved conversations for staff.

Any active staff member may read conversations, messages and citations here (reviewing
answers is part of running the site); nobody can add or edit them, and only superusers
may delete a conversation (for example on a user's request).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from chat.models import Citation, Conversation, Feedback, Message, Role


class ReadOnlyMixin:
    """No add, no change; view for any active staff member; delete for superusers only."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

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
        ("prompt_tokens", "completion_tokens", "ttft_ms", "tokens_per_s"),
        ("feedback", "feedback_comment"),
    ]
    readonly_fields = fields[:8] + list(fields[8]) + list(fields[9])
    ordering = ["created", "pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("citations")

    @admin.display(description="citations")
    def sources(self, message: Message) -> str:
        if message.role != Role.ASSISTANT:
            return "—"
        citations = list(message.citations.all())
        if not citations:
            return "none"
        url = reverse("admin:chat_message_change", args=[message.pk])
        titles = ", ".join(f"[{c.n}] {c.title}" for c in citations)
        return format_html('{} — <a href="{}">read the passages</a>', titles, url)


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["display_title", "user", "message_count", "created", "updated"]
    list_filter = [("user", admin.RelatedOnlyFieldListFilter), "created", "updated", FeedbackFilter]
    search_fields = ["title", "messages__content", "user__username"]
    date_hierarchy = "created"
    list_select_related = ["user"]
    fields = ["public_id", "user", "title", "created", "updated", "settings"]
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
    model = Citation
    extra = 0
    fields = [("n", "score"), "title", "location", "document", "document_public_id", "text"]
    readonly_fields = ["n", "score", "title", "location", "document", "document_public_id", "text"]
    ordering = ["n"]


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
        ("prompt_tokens", "completion_tokens", "ttft_ms", "tokens_per_s"),
        ("feedback", "feedback_comment"),
    ]
    # Review is read-only: every field shown is read-only.
    readonly_fields = [name for row in fields for name in (row if isinstance(row, tuple) else (row,))]
    inlines = [CitationInline]

    @admin.display(description="conversation", ordering="conversation__title")
    def conversation_link(self, message: Message) -> str:
        url = reverse("admin:chat_conversation_change", args=[message.conversation_id])
        return format_html('<a href="{}">{}</a>', url, message.conversation.display_title)

    @admin.display(description="user", ordering="conversation__user__username")
    def user(self, message: Message) -> str:
        return message.conversation.user.get_username()

    @admin.display(description="evidence")
    def evidence_quote(self, message: Message) -> str:
        if not message.evidence:
            return "—"
        return f"“{message.evidence.get('text', '')}” [{message.evidence.get('source')}]"

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
