"""Writes for chat: conversations, messages with their citations and stats, feedback, exports.

Every write to chat models goes through here. Functions validate what a user can get wrong
and raise ``django.core.exceptions.ValidationError`` with a readable message, changing nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from chat.models import (
    SOURCE_UNAVAILABLE,
    TITLE_MAX_LENGTH,
    Citation,
    Conversation,
    Feedback,
    GenerationStats,
    Message,
    MessageStatus,
    Role,
    numbered,
)
from documents.models import Chunk, Document, Scope

log = logging.getLogger(__name__)

FEEDBACK_COMMENT_MAX_CHARS = 2000
QUESTION_MAX_CHARS = 4000


class Source(Protocol):
    """What a citation is made from: ``documents.retrieval.Hit`` satisfies this."""

    chunk_id: int
    document_id: Any  # the document's public UUID
    ordinal: int
    title: str
    location: str
    page: int | None
    text: str
    score: float


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise ValidationError("A title cannot be empty.")
    if len(title) > TITLE_MAX_LENGTH:
        raise ValidationError(f"A title can have at most {TITLE_MAX_LENGTH} characters.")
    return title


def _title_from_question(question: str) -> str:
    words = " ".join(question.split())
    if len(words) <= 60:
        return words
    return words[:60].rsplit(" ", 1)[0] + "…"


def create_conversation(user, title: str = "", scope: Scope | None = None) -> Conversation:
    """Start an empty conversation for ``user``, asking ``scope`` (``Scope.resolve`` checked
    that ``user`` may read it; None: everything); a blank title is filled by the first question."""
    title = _clean_title(title) if title and title.strip() else ""
    conversation = Conversation(user=user, title=title)
    _apply_scope(conversation, scope or Scope())
    conversation.save()
    log.info("user %s started conversation %s (scope %s)", user.pk, conversation.public_id, conversation.scope_kind)
    return conversation


def set_conversation_scope(conversation: Conversation, scope: Scope) -> Conversation:
    """Ask ``scope`` from the next question on (``Scope.resolve`` checked the owner may read it)."""
    _apply_scope(conversation, scope)
    conversation.save(update_fields=["scope_kind", "scope_collection", "scope_document", "updated"])
    log.info("conversation %s now asks %s", conversation.public_id, scope.kind)
    return conversation


def _apply_scope(conversation: Conversation, scope: Scope) -> None:
    conversation.scope_kind = scope.kind
    conversation.scope_collection = scope.collection
    conversation.scope_document = scope.document


def rename_conversation(conversation: Conversation, title: str) -> Conversation:
    """Rename; raises ValidationError for an empty or over-long title."""
    conversation.title = _clean_title(title)
    conversation.save(update_fields=["title", "updated"])
    return conversation


def delete_conversation(conversation: Conversation) -> None:
    """Delete a conversation with all its messages and citations (documents are untouched)."""
    public_id, user_id = conversation.public_id, conversation.user_id
    conversation.delete()
    log.info("user %s deleted conversation %s", user_id, public_id)


def update_conversation_settings(conversation: Conversation, params: dict) -> Conversation:
    """Remember generation parameters for this conversation. ``params`` must already be
    validated (``GenerationParams.from_dict(...).to_dict()``)."""
    conversation.settings = dict(params)
    conversation.save(update_fields=["settings", "updated"])
    return conversation


def append_user_message(conversation: Conversation, content: str) -> Message:
    """Save a question; the first question of an untitled conversation becomes its title."""
    with transaction.atomic():
        message = Message.objects.create(conversation=conversation, role=Role.USER, content=content)
        fields = ["updated"]
        if not conversation.title:
            conversation.title = _title_from_question(content)
            fields.append("title")
        conversation.save(update_fields=fields)
    return message


def save_assistant_message(
    conversation: Conversation,
    *,
    content: str,
    status: str = MessageStatus.COMPLETE,
    sources: Sequence[Source] = (),
    stats: GenerationStats | None = None,
    params: dict | None = None,
    error: str = "",
    finish_reason: str = "",
    evidence: dict | None = None,
    grounding: Sequence[dict] = (),
    highlights: Sequence[Sequence[dict]] = (),
    numbers: Sequence[int] = (),
    generated: str = "",
) -> Message:
    """Save an answer (complete, stopped with its partial text, or failed) with its citations.

    ``sources`` are numbered ``numbers`` (their numbers in the conversation, as the model saw
    them; default 1..n in the order given) and their text is copied, with ``highlights[i]``
    (the evidence sentences of source ``i``, see ``chat.evidence``) when given. A chunk deleted
    since retrieval is cited by its copy alone (the foreign key is left empty); a document
    deleted since then leaves only the number, as its deletion would have
    (``forget_cited_passages``). ``generated``: the text as the model wrote it, when ``content``
    differs (kept for later prompts). ``evidence``, ``grounding`` and
    ``finish_reason`` are stored as ``Message`` documents them.
    """
    stats = stats or GenerationStats()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=Role.ASSISTANT,
            content=content,
            generated=generated if generated != content else "",
            status=status,
            error=error,
            model=stats.model or "",
            params=params or {},
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            ttft_ms=stats.ttft_ms,
            tokens_per_s=stats.tokens_per_s,
            cached_tokens=stats.cached_tokens,
            finish_reason=finish_reason,
            evidence=evidence or {},
            grounding=list(grounding),
        )
        _create_citations(message, sources, highlights, numbers)
        conversation.save(update_fields=["updated"])
    log.info(
        "saved %s answer %s in conversation %s (%d sources)",
        status,
        message.public_id,
        conversation.public_id,
        len(sources),
    )
    return message


def _create_citations(
    message: Message, sources: Sequence[Source], highlights: Sequence[Sequence[dict]], numbers: Sequence[int]
) -> None:
    if not sources:
        return
    chunk_ids = set(Chunk.objects.filter(pk__in=[s.chunk_id for s in sources]).values_list("pk", flat=True))
    documents = dict(
        Document.objects.filter(public_id__in=[s.document_id for s in sources]).values_list("public_id", "pk")
    )
    citations = [
        Citation(
            message=message,
            n=n,
            chunk_id=source.chunk_id if source.chunk_id in chunk_ids else None,
            document_id=documents.get(source.document_id),
            document_public_id=source.document_id,
            score=float(source.score),
            title=source.title[:300],
            location=(source.location or "")[:500],
            ordinal=source.ordinal,
            page=source.page,
            text=source.text,
            highlight=marks,
        )
        for n, source, marks in numbered(sources, highlights, numbers)
    ]
    for citation in citations:
        if citation.document_id is None:
            _blank_passage(citation)
    Citation.objects.bulk_create(citations)
    if message.evidence and not any(c.n == message.evidence.get("source") and c.document_id for c in citations):
        message.evidence = {}
        message.save(update_fields=["evidence"])


# What is erased of a cited passage whose document is deleted: everything copied from it.
_PASSAGE_COPY = {"title": "", "location": "", "ordinal": None, "page": None, "text": "", "highlight": []}


def _blank_passage(citation: Citation) -> None:
    for name, empty in _PASSAGE_COPY.items():
        setattr(citation, name, empty)


def forget_cited_passages(document: Document) -> int:
    """Erase what answers copied from ``document``, which is being deleted: its cited passages
    (title, location, text, highlights) and the evidence quotes taken from them. Citation
    numbers stay, saying ``SOURCE_UNAVAILABLE``. Nobody may read a deleted document, so
    nothing of it is kept (a document made private instead keeps its copies, hidden: see
    ``CitationQuerySet.for_reader``). Returns how many citations were erased.

    Runs from the ``pre_delete`` signal of ``Document`` (``chat.apps``), so every way a
    document goes (site, API, admin, a deleted owner) erases its copies.
    """
    cited = Citation.objects.filter(document=document)
    quoted = set(cited.values_list("message_id", "n"))
    if not quoted:
        return 0
    answers = Message.objects.filter(pk__in={message_id for message_id, _ in quoted}).exclude(evidence={})
    quoting = [pk for pk, evidence in answers.values_list("pk", "evidence") if (pk, evidence.get("source")) in quoted]
    Message.objects.filter(pk__in=quoting).update(evidence={})
    erased = cited.update(**_PASSAGE_COPY)
    log.info("erased %d cited passages of deleted document %s", erased, document.public_id)
    return erased


def set_feedback(message: Message, value: str | int, comment: str = "") -> Message:
    """Rate an answer up, down or back to none, with an optional comment.

    ``value``: "up" / "down" / "none" or 1 / -1 / 0. Raises ValidationError for a question
    (only answers are rated), an unknown value or an over-long comment.
    """
    if message.role != Role.ASSISTANT:
        raise ValidationError("Only answers can be rated.")
    by_name = {"up": Feedback.UP, "down": Feedback.DOWN, "none": Feedback.NONE}
    if isinstance(value, str) and value.strip().lower() in by_name:
        feedback = by_name[value.strip().lower()]
    elif isinstance(value, int) and not isinstance(value, bool) and value in Feedback.values:
        feedback = Feedback(value)
    else:
        raise ValidationError('Feedback must be "up", "down" or "none".')
    comment = (comment or "").strip()
    if len(comment) > FEEDBACK_COMMENT_MAX_CHARS:
        raise ValidationError(f"A comment can have at most {FEEDBACK_COMMENT_MAX_CHARS} characters.")
    message.feedback = feedback
    message.feedback_comment = comment if feedback != Feedback.NONE else ""
    message.save(update_fields=["feedback", "feedback_comment"])
    log.info("feedback %s on answer %s", message.feedback_label, message.public_id)
    return message


# --- exports -------------------------------------------------------------------------------


def _messages_for_export(conversation: Conversation) -> Iterable[Message]:
    # Exports are the owner's: each cited passage as its owner may read it now.
    return conversation.messages.order_by("created", "pk").with_citations_for(conversation.user)


def export_json(conversation: Conversation) -> dict:
    """The whole conversation as plain JSON-able data (the same shape as the API detail).

    Cited passages and evidence quotes appear only while the conversation's owner may read
    their documents (``CitationQuerySet.for_reader``)."""
    return conversation_as_dict(conversation, _messages_for_export(conversation))


def conversation_as_dict(conversation: Conversation, messages: Iterable[Message]) -> dict:
    return {
        "id": str(conversation.public_id),
        "title": conversation.display_title,
        "created": conversation.created.isoformat(),
        "updated": conversation.updated.isoformat(),
        "settings": conversation.settings,
        "scope": conversation.scope_json(conversation.user),
        "messages": [message_as_dict(m) for m in messages],
    }


def message_as_dict(message: Message) -> dict:
    """One message as JSON-able data. Load its citations through ``with_citations_for(reader)``:
    otherwise every cited passage counts as unavailable."""
    data = {
        "id": str(message.public_id),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created": message.created.isoformat(),
    }
    if message.role == Role.ASSISTANT:
        data.update(
            {
                "error": message.error,
                "finish_reason": message.finish_reason,
                "evidence": message.shown_evidence,
                "grounding": message.grounding,
                "params": message.params,
                "stats": message.stats,
                "feedback": message.feedback_label,
                "feedback_comment": message.feedback_comment,
                "citations": [c.as_source() for c in message.citations.all()],
            }
        )
    return data


def export_markdown(conversation: Conversation) -> str:
    """The conversation as a readable Markdown document, with each answer's sources.

    Everything a model or a person wrote (titles, questions, answers, evidence, errors, cited
    passages and their titles, feedback) goes through ``markdown_text``: a viewer shows it as
    the text it is, and no image, link or HTML in it loads or links anything.
    """
    exported = timezone.localtime().strftime("%Y-%m-%d %H:%M %Z")
    lines = [f"# {markdown_text(conversation.display_title)}", "", f"_Exported from kb on {exported}._", ""]
    for message in _messages_for_export(conversation):
        if message.role == Role.USER:
            lines += ["## Question", "", markdown_text(message.content), ""]
            continue
        heading = "## Answer"
        if message.status != MessageStatus.COMPLETE:
            heading += f" ({message.get_status_display().lower()})"
        lines += [heading, ""]
        if message.shown_evidence:
            evidence = markdown_text(message.evidence["text"])
            lines += [f"> {evidence} [{int(message.evidence['source'])}]", ""]
        lines += [_grounded_markdown(message) or "_(no text)_", ""]
        if message.error:
            lines += [f"> Error: {markdown_text(message.error)}", ""]
        citations = list(message.citations.all())
        if citations:
            lines += ["### Sources", ""]
            for citation in citations:
                if not citation.is_readable:
                    lines += [f"{citation.n}. _{SOURCE_UNAVAILABLE}_", ""]
                    continue
                where = f" — {markdown_text(citation.location)}" if citation.location else ""
                quoted = "\n".join(f"   > {markdown_text(line)}" for line in citation.text.splitlines() if line.strip())
                lines += [f"{citation.n}. **{markdown_text(citation.title)}**{where}", quoted, ""]
        if message.feedback != Feedback.NONE:
            comment = f": {markdown_text(message.feedback_comment)}" if message.feedback_comment else ""
            lines += [f"_Feedback: {message.feedback_label}{comment}_", ""]
    return "\n".join(lines).rstrip() + "\n"


# In text for the Markdown export: a citation marker (kept as it is, with what follows it
# escaped if that would make it a link, "[1](url)", or a link definition, "[1]: url"), or a
# character that starts markup that loads or links something: a backslash (which could undo
# an escape), "<" (raw HTML, autolinks), "[" (link and image text, definitions), "!" before
# "[" (images). With no unescaped "[" but citation markers, and no definitions, no link or
# image can form. Bare URLs stay as written: some viewers make them clickable, showing where
# they lead, and nothing loads by itself.
_MARKDOWN_ACTIVE = re.compile(r"\[\d{1,3}\][(:]?|!(?=\[)|[\\<\[]")


def markdown_text(text: str) -> str:
    """``text`` as Markdown that renders as that very text, with no image, link, autolink or
    HTML of its own; citation markers like ``[1]`` stay as they are."""
    return _MARKDOWN_ACTIVE.sub(_escape_markdown, text)


def _escape_markdown(match: re.Match) -> str:
    found = match.group()
    if len(found) > 1 and found[1].isdigit():  # a citation marker
        return found[:-1] + "\\" + found[-1] if found[-1] in "(:" else found
    return "\\" + found


def _grounded_markdown(message: Message) -> str:
    """The answer's text, each sentence the sources do not support marked as such."""
    if not any(not sentence.get("supported", True) for sentence in message.grounding):
        return markdown_text(message.content)
    return " ".join(
        markdown_text(sentence["text"]) + ("" if sentence["supported"] else " _(not found in the sources)_")
        for sentence in message.grounding
    )
