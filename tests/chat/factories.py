"""Factories for the chat tests: a small knowledge base with real MiniLM embeddings, and
conversations with saved answers and citations."""

from __future__ import annotations

import hashlib
import uuid
from types import SimpleNamespace

from chat import services
from chat.models import Conversation, GenerationStats, Message
from documents.models import Document, Status, Visibility
from tests.factories import make_ready_document

# A made-up product, so that the tiny model can only know these facts from the passages.
ZORBLAX_PASSAGES = [
    (
        "Descaling",
        "The Zorblax 3000 coffee machine must be descaled every 40 days. Descaling uses the "
        "blue Zorblax tablets and takes about twelve minutes.",
    ),
    (
        "Warranty",
        "The Zorblax 3000 warranty lasts three years and covers the pump and the heating "
        "element, but not the glass carafe.",
    ),
    (
        "Cleaning",
        "Rinse the Zorblax 3000 drip tray every day with warm water; it is dishwasher safe.",
    ),
]


def make_passage(title: str, location: str, text: str, score: float) -> SimpleNamespace:
    """A retrieval hit (``documents.retrieval.Hit``-like) for a chunk that does not exist, so a
    citation made from it keeps only its copied text."""
    return SimpleNamespace(
        chunk_id=0,
        document_id=uuid.uuid4(),
        ordinal=0,
        title=title,
        location=location,
        page=None,
        text=text,
        score=score,
    )


def make_cited_document(owner, passage, *, visibility=Visibility.PRIVATE, groups=()) -> Document:
    """The document a ``make_passage`` passage comes from (its ``document_id``), owned by
    ``owner``, with no chunks: a citation of the passage shows its copy while the reader may
    read this document. Make it before the conversation that cites the passage."""
    document = Document.objects.create(
        public_id=passage.document_id,
        owner=owner,
        title=passage.title,
        original_name=f"{passage.title}.md",
        mime_type="text/markdown",
        size=len(passage.text),
        sha256=hashlib.sha256(str(passage.document_id).encode()).hexdigest(),
        visibility=visibility,
        status=Status.READY,
    )
    document.groups.set(groups)
    return document


def make_document(owner, title: str, sections: list[tuple[str, str]], *, visibility=Visibility.PRIVATE) -> Document:
    """A ready document whose chunks carry real MiniLM embeddings (no ingestion task)."""
    passages = [(f"{title} › {heading}", text) for heading, text in sections]
    return make_ready_document(owner, title, passages, visibility=visibility)


def make_conversation(user, title: str = "", exchanges: list[tuple[str, str]] = (), sources=()) -> Conversation:
    """A conversation with saved question/answer pairs; every answer cites ``sources``
    (``documents.retrieval.Hit``-like objects)."""
    conversation = services.create_conversation(user, title)
    for question, answer in exchanges:
        services.append_user_message(conversation, question)
        services.save_assistant_message(
            conversation,
            content=answer,
            sources=sources,
            stats=GenerationStats(
                model="SmolLM2-test", prompt_tokens=120, completion_tokens=12, ttft_ms=80, tokens_per_s=31.5
            ),
            params={"mode": "greedy", "max_tokens": 64},
        )
    conversation.refresh_from_db()
    return conversation


def answers(conversation: Conversation) -> list[Message]:
    return list(conversation.messages.filter(role="assistant").order_by("created", "pk"))


def replayed(conversation: Conversation, before, reader) -> list[tuple[str, str]]:
    """The (question, answer) turns a prompt for ``before`` replays."""
    return [(turn.question, turn.answer) for turn in conversation.messages.earlier_turns(before, reader).turns]
