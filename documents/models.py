"""Documents people upload, and the chunks that make them searchable."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchQuery, SearchVector, SearchVectorField
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import Count, Min, Q, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone
from pgvector.django import CosineDistance, HnswIndex, VectorField

DOCUMENT_TITLE_MAX_LENGTH = 300
COLLECTION_NAME_MAX_LENGTH = 200


class Visibility(models.TextChoices):
    PRIVATE = "private", "Only me"
    GROUPS = "groups", "Chosen groups"
    SHARED = "shared", "Everyone signed in"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


# The documents page and API report throughput over this many seconds.
THROUGHPUT_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class IngestionActivity:
    """Counts of documents by status and recent throughput (``ingestion_activity``)."""

    total: int
    ready: int
    pending: int
    processing: int
    failed: int
    chunks_per_second: float
    oldest_pending_seconds: float = 0.0

    @property
    def queued(self) -> int:
        """The queue depth: documents waiting for a worker or being processed."""
        return self.pending + self.processing

    def summary(self) -> str:
        """One line for people, e.g. "1,240 of 5,183 ready, 3,943 in the queue, 40 chunks/s"."""
        parts = [f"{self.ready:,} of {self.total:,} ready", f"{self.queued:,} in the queue"]
        if self.chunks_per_second:
            rate = self.chunks_per_second
            parts.append(f"{rate:,.0f} chunks/s" if rate >= 10 else f"{rate:.1f} chunks/s")
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        return ", ".join(parts)

    def as_json(self) -> dict:
        return {
            "total": self.total,
            "ready": self.ready,
            "pending": self.pending,
            "processing": self.processing,
            "failed": self.failed,
            "queued": self.queued,
            "chunks_per_second": round(self.chunks_per_second, 1),
            "summary": self.summary(),
        }


# Reads every document, whoever owns it and whatever its visibility. Superusers hold every
# permission; the staff flag alone grants nothing here (docs/security.md, "Access rules").
READ_ALL_DOCUMENTS = "documents.read_all_documents"


class SharedQuerySet(models.QuerySet):
    """What people share (documents, collections): an ``owner``, a ``visibility`` and the
    ``groups`` it is shared with."""

    def visible_to(self, user):
        """What ``user`` may read: their own, what is shared with everyone signed in, and what
        is shared with one of their groups; everything for a holder of
        ``documents.read_all_documents`` (superusers included). Inactive and anonymous users
        read nothing.

        This is the one access rule for reading: every listing, page, API call, search,
        retrieval, admin list and cited passage goes through it. A collection is only a name
        for some documents: inside one, a reader sees just the documents this rule lets them
        read (``Collection.documents_for``). Group sharing is a subquery, not a join, so each
        row comes back once and counts annotated on the result stay right.
        """
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.has_perm(READ_ALL_DOCUMENTS):
            return self.all()
        through = self.model.groups.through  # document_id/collection_id, group_id
        shared = through.objects.filter(group__user=user).values(f"{self.model._meta.model_name}_id")
        return self.filter(
            Q(owner=user) | Q(visibility=Visibility.SHARED) | Q(visibility=Visibility.GROUPS, pk__in=shared)
        )


class Shared:
    """What documents and collections have in common as shared things."""

    def groups_shown_to(self, user) -> list[Group]:
        """The groups this is shared with that ``user`` may see named, by name: all of them
        for its owner and superusers, otherwise only the groups ``user`` belongs to (a reader
        learns nothing about groups they are not in). Uses prefetched ``groups``."""
        groups = sorted(self.groups.all(), key=lambda group: group.name)
        if self.owner_id == user.pk or user.is_superuser:
            return groups
        mine = _group_ids(user)
        return [group for group in groups if group.pk in mine]


class DocumentQuerySet(SharedQuerySet):
    def for_owner(self, user) -> DocumentQuerySet:
        return self.filter(owner=user)

    def ingestion_activity(self, *, window_seconds: int = THROUGHPUT_WINDOW_SECONDS) -> IngestionActivity:
        """How ingestion of these documents is going, in one query: counts by status, the
        recent throughput in chunks per second, and how long the document pending longest has
        waited since its last change (0 when none is pending).

        Throughput: the chunks of the documents that became ready during the last
        ``window_seconds``, divided by the time from the start of that window, or from the
        moment the earliest of those documents was claimed by a worker if that is later (so a
        batch that began ten seconds ago is not averaged over a whole minute). Zero when
        nothing became ready in the window.
        """
        now = timezone.now()
        since = now - timedelta(seconds=window_seconds)
        recent = Q(status=Status.READY, ingested__gte=since)
        row = self.aggregate(
            total=Count("pk"),
            ready=Count("pk", filter=Q(status=Status.READY)),
            pending=Count("pk", filter=Q(status=Status.PENDING)),
            processing=Count("pk", filter=Q(status=Status.PROCESSING)),
            failed=Count("pk", filter=Q(status=Status.FAILED)),
            recent_chunks=Sum("progress_total", filter=recent),
            recent_started=Min("ingest_started", filter=recent),
            oldest_pending=Min("updated", filter=Q(status=Status.PENDING)),
        )
        rate = 0.0
        if row["recent_chunks"]:
            began = max(since, row["recent_started"] or since)
            rate = row["recent_chunks"] / max((now - began).total_seconds(), 1.0)
        return IngestionActivity(
            total=row["total"],
            ready=row["ready"],
            pending=row["pending"],
            processing=row["processing"],
            failed=row["failed"],
            chunks_per_second=rate,
            oldest_pending_seconds=max((now - row["oldest_pending"]).total_seconds(), 0.0)
            if row["oldest_pending"]
            else 0.0,
        )


class Document(Shared, models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=DOCUMENT_TITLE_MAX_LENGTH)
    original_name = models.CharField(max_length=255)
    mime_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    groups = models.ManyToManyField(Group, blank=True, related_name="documents")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    embedding_model = models.CharField(max_length=300, blank=True)
    # Bumped by every (re-)ingestion request; a task run that finds a newer number stops, so
    # a stale retry never overwrites the work of a newer one.
    ingest_generation = models.PositiveIntegerField(default=0)
    # The lease of the worker run that holds a ``processing`` document (documents.tasks): who
    # holds it ("host/pid/run", for operators) and until when. The run renews it while it
    # works; once it has expired (the worker was killed), a sweeper hands the document to a
    # new run with a new generation. Empty/null whenever the document is not processing.
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires = models.DateTimeField(null=True, blank=True)
    # How many runs of the current generation lost their lease (worker killed, out of memory,
    # out of time). A document that lost one is processed alone afterwards, so a file that
    # kills workers never takes batch-mates down with it; after Q_MAX_ATTEMPTS it fails.
    lease_losses = models.PositiveSmallIntegerField(default=0)
    # When the current (or last) run claimed the document: the throughput figure measures from it.
    ingest_started = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    ingested = models.DateTimeField(null=True, blank=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        permissions = [("read_all_documents", "Can read every document, whoever owns it")]
        constraints = [
            # The same bytes uploaded twice by one owner are one document.
            models.UniqueConstraint(fields=["owner", "sha256"], name="document_unique_owner_sha256"),
            models.CheckConstraint(
                condition=Q(progress_done__lte=models.F("progress_total")),
                name="document_progress_within_total",
            ),
            # A processing document is always held by a lease, so the sweeper can recover it.
            models.CheckConstraint(
                condition=~Q(status="processing") | Q(lease_expires__isnull=False),
                name="document_processing_has_lease",
            ),
        ]
        indexes = [
            # "My documents" and the admin list: one owner's documents, newest first.
            models.Index(fields=["owner", "-created"], name="document_owner_created"),
            # The visibility filter of visible_to() for shared documents.
            models.Index(fields=["visibility"], name="document_visibility"),
            # The ingestion queue: workers claim pending documents oldest first
            # (documents.tasks, SELECT ... FOR UPDATE SKIP LOCKED).
            models.Index(fields=["created", "id"], name="document_pending_queue", condition=Q(status="pending")),
            # The sweeper: processing documents whose lease has expired.
            models.Index(fields=["lease_expires"], name="document_processing_lease", condition=Q(status="processing")),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.progress_done > self.progress_total:
            raise ValidationError("Progress cannot exceed the total number of chunks.")
        if self.status == Status.PROCESSING and self.lease_expires is None:
            raise ValidationError("A document being processed needs a worker's lease; re-index it instead.")

    @property
    def progress_percent(self) -> int:
        if self.status == Status.READY:
            return 100
        if not self.progress_total:
            return 0
        return int(100 * self.progress_done / self.progress_total)

    @property
    def is_busy(self) -> bool:
        return self.status in (Status.PENDING, Status.PROCESSING)

    def allows(self, user, action: str) -> bool:
        """Whether ``user``, who may read this document, may also ``action`` it ("change":
        re-index; "delete"): its owner may, and so may a holder of ``documents.<action>_document``
        (superusers hold every permission). The staff flag alone does not."""
        return self.owner_id == user.pk or user.has_perm(f"documents.{action}_document")


def _group_ids(user) -> frozenset[int]:
    """The ids of ``user``'s groups, looked up once per user object (as Django caches
    permissions), so a page of documents costs one query for them."""
    if not hasattr(user, "_kb_group_ids"):
        user._kb_group_ids = frozenset(user.groups.values_list("pk", flat=True))
    return user._kb_group_ids


class DocumentFile(models.Model):
    """The uploaded bytes, kept in Postgres so every web and worker replica can read them
    with no shared volume, and one ``pg_dump`` backs up everything. A separate table keeps
    document listings from ever loading file contents."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, related_name="file")
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"bytes of {self.document}"


class CollectionQuerySet(SharedQuerySet):
    def changeable_by(self, user) -> CollectionQuerySet:
        """The collections ``user`` may add documents to: their own, or every one they see
        with ``documents.change_collection``."""
        visible = self.visible_to(user)
        return visible if user.has_perm("documents.change_collection") else visible.filter(owner=user)


class Collection(Shared, models.Model):
    """A named set of documents, shared like a document, that a conversation can be scoped to.
    It never widens access: a reader sees inside it only the documents they may read anyway."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=COLLECTION_NAME_MAX_LENGTH)
    description = models.TextField(blank=True)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    groups = models.ManyToManyField(Group, blank=True, related_name="collections")
    # Deleting a collection removes only these links; deleting a document removes it from every collection.
    documents = models.ManyToManyField(Document, blank=True, related_name="collections")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = CollectionQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="collection_unique_owner_name"),
        ]
        indexes = [
            # "My collections" and the pickers: one owner's collections by name.
            models.Index(fields=["owner", "name"], name="collection_owner_name"),
            # The visibility filter of visible_to() for shared collections.
            models.Index(fields=["visibility"], name="collection_visibility"),
        ]

    def __str__(self) -> str:
        return self.name

    def documents_for(self, user) -> DocumentQuerySet:
        """The documents of this collection that ``user`` may read: never more."""
        return Document.objects.visible_to(user).filter(collections=self)

    def allows(self, user, action: str) -> bool:
        """Whether ``user``, who may see this collection, may also ``action`` it ("change":
        rename, share, add and remove documents; "delete"): its owner may, and so may a holder
        of ``documents.<action>_collection`` (superusers hold every permission)."""
        return self.owner_id == user.pk or user.has_perm(f"documents.{action}_collection")


class ScopeKind(models.TextChoices):
    ALL = "all", "Everything I can read"
    COLLECTION = "collection", "One collection"
    DOCUMENT = "document", "One document"


class ScopeUnavailable(Exception):
    """A scope names a collection or document that is gone or that its reader may not read;
    ``str(exc)`` is the message to show (it never says which of the two)."""


@dataclass(frozen=True)
class Scope:
    """What a search draws from, always within what its reader may read: everything (neither
    set), one collection or one document."""

    collection: Collection | None = None
    document: Document | None = None

    @property
    def kind(self) -> str:
        if self.collection is not None:
            return ScopeKind.COLLECTION
        return ScopeKind.DOCUMENT if self.document is not None else ScopeKind.ALL

    @property
    def name(self) -> str:
        if self.collection is not None:
            return self.collection.name
        return self.document.title if self.document is not None else ScopeKind.ALL.label

    def as_json(self) -> dict:
        """The one JSON shape of a scope (conversation API, socket ``scope`` event, search)."""
        target = self.collection or self.document
        return {"kind": str(self.kind), "id": str(target.public_id) if target else None, "name": self.name}

    @classmethod
    def resolve(cls, user, value) -> Scope:
        """The scope a client asked for: ``{}`` or None (everything), ``{"collection": uuid}``
        or ``{"document": uuid}``. Raises ``ValueError`` (a message to show) for a malformed
        value and ``ScopeUnavailable`` when ``user`` may not read what it names (a 404)."""
        if value in (None, {}, ""):
            return cls()
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("collection", "document"):
            raise ValueError('A scope is {}, {"collection": "<id>"} or {"document": "<id>"}.')
        kind, raw = next(iter(value.items()))
        try:
            public_id = uuid.UUID(str(raw))
        except ValueError:
            raise ValueError(f"The {kind} id must be a UUID.") from None
        if kind == "collection":
            found = Collection.objects.visible_to(user).filter(public_id=public_id).first()
            if found is None:
                raise ScopeUnavailable("Collection not found.")
            return cls(collection=found)
        found = Document.objects.visible_to(user).filter(public_id=public_id).first()
        if found is None:
            raise ScopeUnavailable("Document not found.")
        return cls(document=found)


class ChunkQuerySet(models.QuerySet):
    """The ranking queries of retrieval (``documents.retrieval`` combines them)."""

    def visible_to(self, user, *, listed: bool = False) -> ChunkQuerySet:
        """Chunks of ready documents ``user`` may read (see ``SharedQuerySet.visible_to``).

        ``listed``: those documents as a list of ids (one query on the documents table), not a
        subquery, for a reader of few chunks: the planner then reads them through the document
        index instead of scanning every chunk (an exact vector scan of 10,000 readable chunks
        among a million took 360 ms as a subquery; docs/benchmarks.md).
        """
        documents = Document.objects.visible_to(user).filter(status=Status.READY)
        if listed:
            return self.filter(document_id__in=list(documents.values_list("pk", flat=True)))
        return self.filter(document__in=documents.values("pk"))

    def in_scope(self, scope: Scope | None) -> ChunkQuerySet:
        """These chunks, narrowed to ``scope`` (never widened: apply it to ``visible_to``)."""
        if scope is None or scope.kind == ScopeKind.ALL:
            return self
        if scope.document is not None:
            return self.filter(document_id=scope.document.pk)
        # The collection's documents as a list of ids (one small query), not a subquery: the
        # planner then knows how few chunks they hold and reads them through the document index
        # instead of a full-text or vector index over everyone's chunks.
        members = Collection.documents.through.objects.filter(collection_id=scope.collection.pk)
        return self.filter(document_id__in=list(members.values_list("document_id", flat=True)))

    def nearest(self, vector, *, exact: bool = False) -> ChunkQuerySet:
        """These chunks, closest to ``vector`` first, each annotated with its cosine ``distance``.

        By default the order is one the HNSW index serves (approximate, filtered after the
        index scan). ``exact=True`` orders by an expression the index does not serve
        ("distance + 0"), so Postgres computes every distance: exact, and linear in the rows.
        Slice the result to get the k nearest.
        """
        annotated = self.passages().annotate(distance=CosineDistance("embedding", vector))
        if exact:
            return annotated.order_by(models.F("distance") + models.Value(0.0), "pk")
        return annotated.order_by("distance")

    def passages(self) -> ChunkQuerySet:
        """These chunks as search results: with their documents, without the embedding and the
        tsvector (the database ranks by them; turning 384 floats and a word list into Python
        objects for every hit cost more than the ranking)."""
        return self.select_related("document").defer("embedding", "search_vector")

    def matching(self, lexemes: Sequence[str]) -> ChunkQuerySet:
        """Chunks containing any of ``lexemes`` (already-normalised words, matched as they are),
        through the GIN index on ``search_vector``."""
        return self.filter(search_vector=any_lexeme_query(lexemes))

    def lexeme_frequencies(self, lexemes: Sequence[str]) -> tuple[int, list[int]]:
        """How many these chunks are, and for each of ``lexemes`` how many contain it, in one
        pass over all of them: for a small set (a collection or a document); the kept
        statistics (``documents.text_stats``) serve everything a reader may read."""
        counts = self.aggregate(
            chunks=models.Count("pk"),
            **{
                f"df{i}": models.Count("pk", filter=Q(search_vector=any_lexeme_query([lexeme])))
                for i, lexeme in enumerate(lexemes)
            },
        )
        return counts["chunks"], [counts[f"df{i}"] for i in range(len(lexemes))]

    def ranked_by_lexemes(
        self, lexemes: Sequence[str], weights: Sequence[float], *, tie_break: float, among: Sequence[str] = ()
    ) -> ChunkQuerySet:
        """Chunks containing any of ``among`` (default: of ``lexemes``), through the GIN index,
        annotated with ``text_score``: the sum of the ``weights`` of the ``lexemes`` each
        contains, plus ``tie_break`` × ``ts_rank``; best first."""
        # One SQL expression with parameters: built as a tree of Django expressions, the score
        # of a ten-word question took longer to compile than to run.
        column = f'"{self.model._meta.db_table}"."search_vector"'
        terms = [f"%s * ts_rank({column}, to_tsquery('simple', %s))"]
        params: list = [tie_break, _raw_tsquery(lexemes)]
        for lexeme, weight in zip(lexemes, weights, strict=True):
            if weight:
                terms.append(f"CASE WHEN {column} @@ to_tsquery('simple', %s) THEN %s ELSE 0 END")
                params += [_raw_tsquery([lexeme]), weight]
        # Every value is a parameter; the SQL text holds only this table's own column name.
        score = RawSQL(" + ".join(terms), params, output_field=models.FloatField())  # noqa: S611
        return (
            self.filter(search_vector=any_lexeme_query(among or lexemes))
            .annotate(text_score=score)
            .order_by("-text_score", "pk")
        )


def _raw_tsquery(lexemes: Sequence[str]) -> str:
    return " | ".join("'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'" for lexeme in lexemes)


def any_lexeme_query(lexemes: Sequence[str]) -> SearchQuery:
    """A tsquery matching any of ``lexemes`` as given (the 'simple' configuration: no second
    stemming of words Postgres already normalised with the chunks' 'english' one)."""
    return SearchQuery(_raw_tsquery(lexemes), search_type="raw", config="simple")


class ChunkManager(models.Manager.from_queryset(ChunkQuerySet)):
    def estimated_count(self) -> int:
        """How many chunks there are, from the planner's statistics when it has them (no scan)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [self.model._meta.db_table]
            )
            estimate = cursor.fetchone()[0]
        # -1: never analysed yet; a small table is cheap to count.
        return estimate if estimate > 0 else self.count()

    def copy_in(self, chunks: Iterable[Chunk]) -> int:
        """Insert unsaved ``chunks`` with one binary ``COPY`` (within the caller's transaction):
        what ``bulk_create`` does, and the same triggers fire, without building an INSERT of
        every value or writing each vector as text. A run of 1,900 chunks takes about half the
        time. Returns how many rows it wrote."""
        from pgvector import Vector

        columns = ("document_id", "ordinal", "text", "token_count", "location", "page", "embedding")
        # COPY carries no types: the server reads each field with its column's own binary
        # input, so the vector goes in pgvector's binary form, written as plain bytes.
        types = ("int8", "int4", "text", "int4", "text", "int4", "bytea")
        sql = f"COPY {self.model._meta.db_table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        written = 0
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            copy.set_types(types)
            for chunk in chunks:
                copy.write_row(
                    (
                        chunk.document_id,
                        chunk.ordinal,
                        chunk.text,
                        chunk.token_count,
                        chunk.location,
                        chunk.page,
                        Vector(chunk.embedding).to_binary(),
                    )
                )
                written += 1
        return written


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    # Where the text came from: "page 3" for PDF, "Install › Linux" for headed formats.
    location = models.CharField(max_length=500, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    embedding = VectorField(dimensions=384)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = ChunkManager()

    class Meta:
        ordering = ["document", "ordinal"]
        constraints = [
            # Exactly one set of chunks per document: a re-run replaces, never appends.
            models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_document_ordinal"),
        ]
        indexes = [
            # Dense retrieval: ORDER BY embedding <=> query (cosine distance).
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            # Full-text retrieval: search_vector @@ tsquery, ranked with ts_rank.
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.document} #{self.ordinal}"


class IngestionRequest(models.Model):
    """One row saying whether an ``ingest_pending`` run is queued and has not started yet
    (``documents.services.request_ingestion``): uploads then queue no other, so a thousand
    uploads cost a handful of queued tasks, not a thousand."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    wanted = models.BooleanField(default=False)

    class Meta:
        db_table = "documents_ingestion_request"

    def __str__(self) -> str:
        return "ingestion requested" if self.wanted else "no ingestion requested"


# The full-text statistics' tables (kept by database triggers, see documents/text_stats.py).
from documents.text_stats import Audience, CountedDocument, LexemeCount  # noqa: E402, F401
