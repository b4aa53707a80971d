"""Django admin for documents: upload, inspect chunks, see why a file failed, re-index, delete.

The admin shows a staff member only the documents they may read on the site
(``Document.objects.visible_to``: their own, shared, their groups'; all of them with
``documents.read_all_documents``), and Django's model permissions (view / add / change /
delete document) decide what they may do with those. The staff flag alone opens nothing.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count
from django.template.defaultfilters import filesizeformat, truncatechars
from django.urls import reverse
from django.utils.html import format_html

from documents import services
from documents.forms import AdminUploadForm
from documents.models import Chunk, Collection, Document

INLINE_CHUNKS = 50


class ChunkInline(admin.TabularInline):
    """The first ``INLINE_CHUNKS`` chunks, read-only; the site's document page pages through all."""

    model = Chunk
    fields = ["ordinal", "location", "token_count", "excerpt"]
    readonly_fields = fields
    ordering = ["ordinal"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = f"Chunks (first {INLINE_CHUNKS}; all on the document's page on the site)"

    def get_queryset(self, request):
        # Ordinals run 0..n-1 within a document, so this keeps the first INLINE_CHUNKS of it
        # (the inline's queryset cannot be sliced: the formset filters it by document).
        return (
            super()
            .get_queryset(request)
            .filter(ordinal__lt=INLINE_CHUNKS)
            .only("id", "document_id", "ordinal", "location", "token_count", "text")
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="text")
    def excerpt(self, chunk: Chunk) -> str:
        return truncatechars(chunk.text, 240)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "status", "visibility", "progress", "chunk_count", "created"]
    list_filter = ["status", "visibility", ("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["title", "original_name", "owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "created"
    actions = ["reindex_selected", "delete_selected"]
    inlines = [ChunkInline]
    filter_horizontal = ["groups"]
    fieldsets = [
        (None, {"fields": ["title", "owner", "visibility", "groups", "site_page"]}),
        ("Ingestion", {"fields": ["status", "progress", "error", "embedding_model", "ingested"]}),
        # Who holds a processing document, and how often its worker was lost (documents.tasks).
        (
            "Worker lease",
            {"fields": ["lease_owner", "lease_expires", "lease_losses", "ingest_started"], "classes": ["collapse"]},
        ),
        ("File", {"fields": ["original_name", "mime_type", "file_size", "sha256"]}),
        ("Identity", {"fields": ["public_id", "created", "updated"], "classes": ["collapse"]}),
    ]
    readonly_fields = [
        "owner",
        "site_page",
        "status",
        "progress",
        "error",
        "embedding_model",
        "ingested",
        "lease_owner",
        "lease_expires",
        "lease_losses",
        "ingest_started",
        "original_name",
        "mime_type",
        "file_size",
        "sha256",
        "public_id",
        "created",
        "updated",
    ]
    add_fieldsets = [(None, {"fields": ["file", "title", "owner", "visibility", "groups"]})]

    def get_queryset(self, request):
        # The same reading rule as the site: another user's private document does not exist here.
        return super().get_queryset(request).visible_to(request.user).annotate(chunk_total=Count("chunks"))

    # Adding uploads a file through the ingestion service; changing edits only the title and who
    # may read the document (the bytes and everything derived from them are read-only).
    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return AdminUploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def get_changeform_initial_data(self, request) -> dict:
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # Adding: the upload service stores the file; ``obj`` (an unsaved placeholder the
        # admin goes on to log and redirect to) becomes the document it made or found.
        [(document, created)] = form.upload(form.cleaned_data["owner"])
        obj.pk = document.pk
        obj.refresh_from_db()
        if not created:
            self.message_user(
                request,
                f"{obj.owner} already uploaded this file as “{obj.title}”; no new document was made.",
                messages.WARNING,
            )

    def get_deleted_objects(self, objs, request):
        # Django's confirmation page would list every chunk; a document can have thousands.
        documents = list(objs)
        chunk_counts = dict(
            Chunk.objects.filter(document__in=documents)
            .values("document_id")
            .annotate(n=Count("id"))
            .values_list("document_id", "n")
        )
        summary = [f"Document: {d.title} ({chunk_counts.get(d.pk, 0)} chunks)" for d in documents]
        model_count = {"documents": len(documents), "chunks": sum(chunk_counts.values())}
        perms_needed = set() if self.has_delete_permission(request) else {"document"}
        return summary, model_count, perms_needed, []

    def delete_model(self, request, obj) -> None:
        services.delete_document(obj)

    def delete_queryset(self, request, queryset) -> None:
        for document in queryset:
            services.delete_document(document)

    @admin.action(description="Re-index selected documents", permissions=["change"])
    def reindex_selected(self, request, queryset) -> None:
        count = 0
        for document in queryset:
            services.reindex_document(document)
            count += 1
        self.message_user(request, f"Queued {count} document(s) for re-indexing.", messages.SUCCESS)

    @admin.display(description="progress")
    def progress(self, document: Document) -> str:
        if document.is_busy and document.progress_total:
            return f"{document.progress_done}/{document.progress_total} ({document.progress_percent}%)"
        return f"{document.progress_percent}%"

    @admin.display(description="chunks", ordering="chunk_total")
    def chunk_count(self, document: Document) -> int:
        return document.chunk_total

    @admin.display(description="size")
    def file_size(self, document: Document) -> str:
        return filesizeformat(document.size)

    @admin.display(description="on the site")
    def site_page(self, document: Document) -> str:
        url = reverse("documents:detail", args=[document.public_id])
        return format_html('<a href="{}">{}</a>', url, url)


class CollectionDocumentInline(admin.TabularInline):
    """The collection's documents (links only: removing one here leaves the document alone)."""

    model = Collection.documents.through
    fields = ["document"]
    autocomplete_fields = ["document"]
    extra = 0
    verbose_name = "document"
    verbose_name_plural = "documents in this collection"

    def get_queryset(self, request):
        # Only links to documents this admin may read: a collection never widens access.
        readable = Document.objects.visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(document__in=readable).select_related("document")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "document":
            kwargs["queryset"] = Document.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "visibility", "document_total", "updated"]
    list_filter = ["visibility", ("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "description", "owner__username"]
    list_select_related = ["owner"]
    filter_horizontal = ["groups"]
    fields = ["name", "description", "owner", "visibility", "groups", "public_id", "created", "updated"]
    readonly_fields = ["public_id", "created", "updated"]
    inlines = [CollectionDocumentInline]

    def get_queryset(self, request):
        # The site's rule: a collection this admin may not see does not exist here.
        return super().get_queryset(request).visible_to(request.user).annotate(document_count=Count("documents"))

    def get_changeform_initial_data(self, request) -> dict:
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    def delete_model(self, request, obj) -> None:
        services.delete_collection(obj)

    def delete_queryset(self, request, queryset) -> None:
        for collection in queryset:
            services.delete_collection(collection)

    @admin.display(description="documents", ordering="document_count")
    def document_total(self, collection: Collection) -> int:
        return collection.document_count
