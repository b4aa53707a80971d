"""Small factories shared by the documents web tests (pages, API, visibility, admin)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from documents.models import Chunk, Document, DocumentFile, Status, Visibility

API = "/api/v1/documents/"

GUIDE_MD = b"""# Gardening guide

Tomatoes need at least six hours of direct sun each day and steady watering.

## Pests

Aphids gather under leaves; a strong jet of water or ladybirds keep them in check.

## Harvest

Pick tomatoes when they are fully coloured and slightly soft to the touch.
"""


def markdown_file(name: str = "guide.md", data: bytes = GUIDE_MD) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/markdown")


def make_document(
    owner,
    title: str,
    *,
    visibility: str = Visibility.PRIVATE,
    groups=(),
    chunks: int = 2,
    status: str = Status.READY,
) -> Document:
    """A ready document with ``chunks`` chunks, made directly (no ingestion) for access tests."""
    data = f"{title} {uuid.uuid4()}".encode()
    document = Document.objects.create(
        owner=owner,
        title=title,
        original_name=f"{title}.txt",
        mime_type="text/plain",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        visibility=visibility,
        status=status,
        progress_done=chunks if status == Status.READY else 0,
        progress_total=chunks if status == Status.READY else 0,
        # A processing document is held by a worker's lease (documents.tasks).
        lease_expires=timezone.now() + timedelta(seconds=30) if status == Status.PROCESSING else None,
    )
    document.groups.set(groups)
    DocumentFile.objects.create(document=document, data=data)
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            ordinal=i,
            text=f"Passage {i} of {title}.",
            token_count=8,
            location=f"page {i + 1}",
            page=i + 1,
            embedding=[0.1] * 384,
        )
        for i in range(chunks)
    )
    return document


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
