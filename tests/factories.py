"""Factories shared by the test apps."""

from __future__ import annotations

import hashlib

from documents import embeddings
from documents.models import Chunk, Document, Status, Visibility


def make_ready_document(
    owner, title: str, passages: list[tuple[str, str]], *, visibility=Visibility.PRIVATE, groups=()
) -> Document:
    """A ready document whose chunks — ``(location, text)`` pairs — carry real MiniLM
    embeddings, made directly (no ingestion task) for retrieval and chat tests."""
    texts = [text for _, text in passages]
    document = Document.objects.create(
        owner=owner,
        title=title,
        original_name=f"{title}.md",
        mime_type="text/markdown",
        size=sum(len(t) for t in texts),
        sha256=hashlib.sha256((title + "".join(texts)).encode()).hexdigest(),
        visibility=visibility,
        status=Status.READY,
        progress_done=len(texts),
        progress_total=len(texts),
        embedding_model=embeddings.model_name(),
    )
    document.groups.set(groups)
    vectors = embeddings.embed_texts(texts)
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            ordinal=i,
            text=text,
            token_count=embeddings.count_tokens(text),
            location=location,
            embedding=vector,
        )
        for i, ((location, text), vector) in enumerate(zip(passages, vectors, strict=True))
    )
    return document
