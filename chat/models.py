"""Saved conversations: each user's questions, the model's answers, and the passages they cited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Prefetch, Q

from documents.models import Collection, Document, Scope, ScopeKind, ScopeUnavailable
from documents.retrieval import passage_payload

TITLE_MAX_LENGTH = 200
# Opens the read-only review of every user's conversations in the admin. Superusers hold
# every permission; the staff flag alone grants nothing (docs/security.md, "Access rules").
REVIEW_CONVERSATIONS = "chat.review_conversations"
# What a reader sees of a cited passage whose document they may no longer read.
SOURCE_UNAVAILABLE = "Source no longer available"


@dataclass(frozen=True)
class GenerationStats:
    """What is saved and sent (the ``done`` event's ``stats``) about how one answer was made;
    every field may be unknown (None). The field names are ``Message``'s column names."""

    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: int | None = None
    tokens_per_s: float | None = None
    cached_tokens: int | None = None  # prompt tokens the model did not read again (its cache held them)

    @classmethod
    def from_engine(cls, stats: dict[str, Any]) -> GenerationStats:
        """From the engine's live stats dict (see ``chat.llm.engine``), which has more keys."""
        return cls(**{f.name: stats.get(f.name) for f in fields(cls) if stats.get(f.name) is not None})

    def as_dict(self) -> dict:
        return asdict(self)


# Longest conversation search (the sidebar's box, ``GET /api/v1/conversations/?q=``).
SEARCH_MAX_CHARS = 200


class SearchTooLong(ValueError):
    """The search text is longer than ``SEARCH_MAX_CHARS``; ``str(exc)`` is the message to show."""


class ConversationQuerySet(models.QuerySet):
    def for_user(self, user) -> ConversationQuerySet:
        """The conversations ``user`` owns; nobody else's, ever (staff included — they review
        conversations in the admin, not in the chat page)."""
        if user is None or not user.is_authenticated:
            return self.none()
        return self.filter(user=user)

    def owned(self, user, public_id: uuid.UUID) -> Conversation | None:
        """The conversation ``public_id`` if ``user`` owns it, else None: the one access rule
        for pages (404), the API (404) and the socket (close 4404)."""
        return self.for_user(user).filter(public_id=public_id).first()

    def search(self, text: str) -> ConversationQuerySet:
        """Those of these conversations whose title or any message contains ``text``
        (case-insensitive); all of them for empty ``text``. Call it on one user's conversations:
        ``Conversation.objects.for_user(user).search(text)``.

        Only the messages of these conversations are read: Postgres finds them through the
        indexes on a conversation's user and on a message's conversation, and scans just those
        for the substring; no other user's message is read (20,000 messages, 2,000 of them the
        searcher's: 6 ms, against 54 ms for a scan of everyone's). No index serves a substring
        match in every Postgres kb runs on (pg_trgm is not in the embedded server), and one
        person's history is small enough to scan. Raises ``SearchTooLong`` past
        ``SEARCH_MAX_CHARS``.
        """
        text = (text or "").strip()
        if not text:
            return self
        if len(text) > SEARCH_MAX_CHARS:
            raise SearchTooLong(f"Search for at most {SEARCH_MAX_CHARS} characters; that search has {len(text):,}.")
        matching = Message.objects.filter(conversation__in=self.values("pk"), content__icontains=text)
        return self.filter(Q(title__icontains=text) | Q(pk__in=matching.values("conversation_id")))


STATS_FIELDS = tuple(f.name for f in fields(GenerationStats))


class Conversation(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    # Empty until the first question names it (see services.append_user_message).
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # The generation parameters chosen in the settings panel (chat.llm.GenerationParams.to_dict()),
    # remembered per conversation. Empty: the site defaults.
    settings = models.JSONField(default=dict, blank=True)
    # What questions search (documents.models.Scope): everything the user may read, one
    # collection or one document. The kind outlives the target: when that is deleted (the link
    # set to null), the next question is told so instead of searching everything.
    scope_kind = models.CharField(max_length=12, choices=ScopeKind.choices, default=ScopeKind.ALL)
    scope_collection = models.ForeignKey(
        Collection, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    scope_document = models.ForeignKey(
        Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="scoped_conversations"
    )

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated"]
        permissions = [("review_conversations", "Can review every user's conversations")]
        indexes = [
            # The sidebar: one user's conversations, most recently active first.
            models.Index(fields=["user", "-updated"], name="conversation_user_updated"),
        ]
        constraints = [
            # A scope names at most one target, of its own kind.
            models.CheckConstraint(
                condition=Q(scope_collection__isnull=True) | Q(scope_kind="collection", scope_document__isnull=True),
                name="conversation_scope_collection_kind",
            ),
            models.CheckConstraint(
                condition=Q(scope_document__isnull=True) | Q(scope_kind="document", scope_collection__isnull=True),
                name="conversation_scope_document_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.display_title

    @property
    def display_title(self) -> str:
        return self.title or "New conversation"

    def scope_for(self, user) -> Scope:
        """The scope questions search now, as ``user`` may read it. Raises ``ScopeUnavailable``
        with a message for people when its collection or document was deleted, when ``user``
        may no longer read it, or when a collection holds nothing ``user`` can read."""
        if self.scope_kind == ScopeKind.ALL:
            return Scope()
        if self.scope_kind == ScopeKind.COLLECTION:
            found = Collection.objects.visible_to(user).filter(pk=self.scope_collection_id).first()
            if found is None:
                raise ScopeUnavailable(
                    "The collection this conversation asks was deleted, or you can no longer see it. "
                    "Choose another scope to go on."
                )
            if not found.documents_for(user).exists():
                raise ScopeUnavailable(
                    f"The collection “{found.name}” holds no document you can read. "
                    "Add documents to it or choose another scope."
                )
            return Scope(collection=found)
        found = Document.objects.visible_to(user).filter(pk=self.scope_document_id).first()
        if found is None:
            raise ScopeUnavailable(
                "The document this conversation asks about was deleted, or you can no longer read it. "
                "Choose another scope to go on."
            )
        return Scope(document=found)

    def scope_json(self, user) -> dict:
        """The scope as ``Scope.as_json`` shows it, plus ``available``: False (with ``message``,
        and no ``id`` or ``name``) when the next question could not search it."""
        try:
            return {**self.scope_for(user).as_json(), "available": True}
        except ScopeUnavailable as exc:
            return {"kind": self.scope_kind, "id": None, "name": None, "available": False, "message": str(exc)}

    @property
    def socket_path(self) -> str:
        """Where to ask questions in this conversation (docs/websocket-protocol.md)."""
        return f"/ws/chat/{self.public_id}/"


class Role(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class Feedback(models.IntegerChoices):
    UP = 1, "Thumbs up"
    NONE = 0, "None"
    DOWN = -1, "Thumbs down"


class MessageQuerySet(models.QuerySet):
    def last_question(self) -> Message | None:
        """The latest question among these messages (``conversation.messages.last_question()``)."""
        return self.filter(role=Role.USER).order_by("-created", "-pk").first()

    def with_citations_for(self, reader) -> MessageQuerySet:
        """These messages with their citations prefetched in order, as ``reader`` may see them
        (``CitationQuerySet.for_reader``): one more query, however many citations."""
        citations = Citation.objects.for_reader(reader).order_by("n")
        return self.prefetch_related(Prefetch("citations", queryset=citations))

    def earlier_turns(self, before: Message, reader) -> EarlierTurns:
        """What a new question's answer needs of the conversation before it, in two queries.
        Call it on one conversation's messages; ``reader`` asks (the conversation's owner).

        ``turns``: earlier exchanges for the prompt, oldest first, each question with its
        answer (as the model wrote it: ``Message.generated``) and the answer's citations
        ``reader`` may still read. Only answers worth
        imitating are replayed: stopped and failed answers, answers the repetition guard cut,
        and answers most of whose sentences the sources do not support are left out with their
        questions, so the model never copies a broken reply. ``numbers``: the number each
        chunk cited so far has in this conversation (its latest), and ``next_number`` the first
        one no citation uses. ``previous_question``: the question asked just before ``before``
        (``None`` for the first). ``previous_evidence``: the evidence sentence quoted for the
        latest answer ("" when none).
        """
        earlier = list(
            self.filter(created__lte=before.created)
            .exclude(pk=before.pk)
            .order_by("created", "pk")
            .with_citations_for(reader)
        )
        turns: list[EarlierTurn] = []
        for asked, answered in zip(earlier, earlier[1:], strict=False):
            if (
                asked.role == Role.USER
                and answered.role == Role.ASSISTANT
                and worth_replaying(answered.status, answered.finish_reason, answered.grounding)
            ):
                readable = [citation for citation in answered.citations.all() if citation.is_readable]
                turns.append(EarlierTurn(asked.content, answered.generated or answered.content, readable))
        citations = [citation for message in earlier for citation in message.citations.all()]
        questions = [message.content for message in earlier if message.role == Role.USER]
        answers = [message.evidence for message in earlier if message.role == Role.ASSISTANT]
        return EarlierTurns(
            turns=turns,
            previous_question=questions[-1] if questions else None,
            previous_evidence=str((answers[-1] or {}).get("text") or "") if answers else "",
            numbers={citation.chunk_id: citation.n for citation in citations if citation.chunk_id is not None},
            next_number=max((citation.n for citation in citations), default=0) + 1,
        )


@dataclass(frozen=True)
class EarlierTurn:
    question: str
    answer: str
    citations: list[Citation]  # the ones the reader may still read, by number


@dataclass(frozen=True)
class EarlierTurns:
    turns: list[EarlierTurn]
    previous_question: str | None
    previous_evidence: str
    numbers: dict[int, int]  # chunk id -> its latest number in the conversation
    next_number: int  # above every number used so far

    def number(self, chunk_ids: Sequence[int]) -> list[int]:
        """The number of each chunk in this conversation: the one it had before, else a new one."""
        free, result = self.next_number, []
        for chunk_id in chunk_ids:
            number = self.numbers.get(chunk_id)
            if number is None or number in result:  # two chunks once numbered alike (before numbers were kept)
                number, free = free, free + 1
            result.append(number)
        return result


def numbered(
    sources: Sequence[Any], highlights: Sequence[Sequence[dict]] = (), numbers: Sequence[int] = ()
) -> list[tuple[int, Any, list[dict]]]:
    """``(n, source, highlight)`` for each source, as an answer shows and saves them: ``n`` its
    number in the conversation (``numbers``; 1, 2, ... when not given), ``highlight`` its
    evidence sentences (none when not given)."""
    numbers = list(numbers) or list(range(1, len(sources) + 1))
    marked = list(highlights) + [[]] * (len(sources) - len(highlights))
    return [(n, source, list(marks)) for n, source, marks in zip(numbers, sources, marked, strict=True)]


def worth_replaying(status: str, finish_reason: str, grounding: list) -> bool:
    """Whether a later prompt replays an answer (``MessageQuerySet.earlier_turns``)."""
    unsupported = sum(not sentence.get("supported", True) for sentence in grounding or [])
    return status == MessageStatus.COMPLETE and finish_reason != "loop" and 2 * unsupported <= len(grounding or [])


class Message(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    # An answer as the model wrote it, when the grounding check changed it (added citations):
    # later prompts replay this, so the model's cache of it is reused. Empty otherwise.
    generated = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    # Why a failed answer failed, in words a user can read.
    error = models.TextField(blank=True)
    # Generation record of an assistant message; empty/null for user messages and for the
    # "not in the knowledge base" answer, which calls no model.
    model = models.CharField(max_length=300, blank=True)
    params = models.JSONField(default=dict, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField("time to first token (ms)", null=True, blank=True)
    tokens_per_s = models.FloatField("tokens per second", null=True, blank=True)
    # Of prompt_tokens, those the model's cache held from an earlier prompt (a follow-up's
    # replayed turns): not read again. Null when the backend does not say (the remote one).
    cached_tokens = models.PositiveIntegerField("prompt tokens cached", null=True, blank=True)
    # How generation ended (chat.llm's finish reasons: stop, length, cancelled, error) or
    # "loop" when the repetition guard ended it; empty when no model was called.
    finish_reason = models.CharField(max_length=20, blank=True)
    # The quoted answer shown before the model starts: {"text": sentence, "source": n}, or {}.
    evidence = models.JSONField(default=dict, blank=True)
    # The grounding check of the answer, sentence by sentence (chat.grounding):
    # [{"text": sentence, "supported": bool, "sources": [n, ...]}, ...].
    grounding = models.JSONField(default=list, blank=True)
    feedback = models.SmallIntegerField(choices=Feedback.choices, default=Feedback.NONE)
    feedback_comment = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["conversation", "created", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=Role.values), name="message_role_valid"),
            models.CheckConstraint(condition=Q(status__in=MessageStatus.values), name="message_status_valid"),
            models.CheckConstraint(condition=Q(feedback__in=Feedback.values), name="message_feedback_valid"),
            # Users rate answers, not their own questions.
            models.CheckConstraint(
                condition=Q(role=Role.ASSISTANT) | (Q(feedback=Feedback.NONE) & Q(feedback_comment="")),
                name="message_feedback_only_on_answers",
            ),
        ]
        indexes = [
            # A conversation's messages in order (conversation page, prompt history, export).
            models.Index(fields=["conversation", "created"], name="message_conversation_created"),
            # The admin's feedback filter: the few rated answers among many unrated ones.
            models.Index(
                fields=["feedback", "-created"], name="message_rated_created", condition=~Q(feedback=Feedback.NONE)
            ),
        ]

    def __str__(self) -> str:
        preview = self.content[:60] + ("…" if len(self.content) > 60 else "")
        return f"{self.get_role_display()}: {preview}"

    def clean(self) -> None:
        if self.role != Role.ASSISTANT and (self.feedback != Feedback.NONE or self.feedback_comment):
            raise ValidationError("Only answers can receive feedback.")

    @property
    def feedback_label(self) -> str:
        return {Feedback.UP: "up", Feedback.DOWN: "down"}.get(self.feedback, "none")

    @property
    def stats(self) -> dict:
        return {name: getattr(self, name) for name in STATS_FIELDS}

    @property
    def shown_evidence(self) -> dict:
        """``evidence`` while the passage it quotes may be shown (its citation is readable, see
        ``CitationQuerySet.for_reader``), else ``{}``: the quote is the passage's own words."""
        if not self.evidence:
            return {}
        source = self.evidence.get("source")
        if any(citation.n == source and citation.is_readable for citation in self.citations.all()):
            return self.evidence
        return {}


class CitationQuerySet(models.QuerySet):
    def for_reader(self, reader) -> CitationQuerySet:
        """These citations, each annotated ``source_readable``: whether ``reader`` may read the
        cited document now (``Document.objects.visible_to``), computed in this same query (an
        EXISTS per row), so a page of any number of citations costs no extra query.

        The one rule for showing a cited passage, wherever it is shown (conversation page,
        API, exports, admin review): its title, location, text and highlights, and an
        answer's evidence quote taken from it, are shown only while the reader may read the
        document. Otherwise the citation keeps its number and says ``SOURCE_UNAVAILABLE``. A
        citation loaded any other way counts as unreadable: the rule fails closed.
        """
        readable = Document.objects.visible_to(reader).filter(pk=OuterRef("document_id"))
        return self.annotate(source_readable=Exists(readable))


class Citation(models.Model):
    """A passage an answer was given as evidence, numbered as the model saw it.

    The passage's title, location and text are copied: re-indexing the document replaces
    its chunks, and an old answer must keep showing what it was based on, to readers who may
    still read the document (``CitationQuerySet.for_reader``). Deleting the document erases
    the copies (``chat.services.forget_cited_passages``).
    """

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="citations")
    chunk = models.ForeignKey(
        "documents.Chunk", on_delete=models.SET_NULL, null=True, blank=True, related_name="citations"
    )
    document = models.ForeignKey(
        "documents.Document", on_delete=models.SET_NULL, null=True, blank=True, related_name="citations"
    )
    # The public id of the document, kept after the document itself is deleted.
    document_public_id = models.UUIDField(null=True, blank=True)
    n = models.PositiveSmallIntegerField("rank")
    score = models.FloatField()
    title = models.CharField(max_length=300)
    location = models.CharField(max_length=500, blank=True)
    # The passage's place in its document when it was cited (the document page's #chunk-N).
    ordinal = models.PositiveIntegerField(null=True, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    text = models.TextField()
    # The sentences of ``text`` that best answer the question (chat.evidence):
    # [{"text": sentence, "start": offset, "end": offset}, ...], offsets in code points.
    highlight = models.JSONField(default=list, blank=True)

    objects = CitationQuerySet.as_manager()

    class Meta:
        ordering = ["message", "n"]
        constraints = [
            # [n] markers in an answer point at exactly one passage.
            models.UniqueConstraint(fields=["message", "n"], name="citation_unique_message_n"),
            models.CheckConstraint(condition=Q(n__gte=1), name="citation_n_positive"),
        ]

    def __str__(self) -> str:
        # No title: the admin prints this where the reader may not be allowed to see it.
        return f"source [{self.n}]"

    @property
    def is_readable(self) -> bool:
        """Whether the reader this citation was loaded for may see its passage (see
        ``CitationQuerySet.for_reader``; False when it was loaded any other way)."""
        return getattr(self, "source_readable", False) is True

    def as_source(self) -> dict:
        """The shape of an entry of the websocket ``sources`` event, plus ``available``. An
        unreadable passage keeps its number only: title ``SOURCE_UNAVAILABLE``, everything
        else copied from the document empty."""
        if not self.is_readable:
            return {
                "n": self.n,
                "document": None,
                "ordinal": None,
                "title": SOURCE_UNAVAILABLE,
                "location": "",
                "page": None,
                "text": "",
                "score": None,
                "highlight": [],
                "available": False,
            }
        passage = passage_payload(self, document_id=self.document_public_id)
        return {"n": self.n, **passage, "highlight": self.highlight, "available": True}
