"""Full-text statistics kept up to date by the database: how many readable chunks contain each
word, for every reader, without counting chunks per query.

Contract: ``LexemeCount.objects.frequencies(user, lexemes)`` returns ``Frequencies``: how many
chunks of ready documents ``user`` may read (``Chunk.objects.visible_to``) and how many of them
contain each lexeme, and the same over all ready documents. Exact, in one indexed query over a
few rows per lexeme.

How: every ready document belongs to one *audience*, the readers its visibility admits —
everyone signed in (shared), its owner alone (private), or its owner and some groups (shared
with groups) — and ``documents_lexemecount`` holds, per audience and lexeme, how many of the
audience's chunks contain the lexeme (the lexeme ``''`` counts the chunks themselves). A
reader's figures are the sums over the audiences admitting them: disjoint sets of documents,
so the sums are exact, and no reader's figures depend on what others' private documents say
(a shared document frequency would let scores reveal whether a word occurs in documents one
may not read).

Database triggers keep the counts (migration 0006), because every path that changes them must:
chunks inserted, deleted or edited (ingestion, re-index, deletion, the admin), a document becoming
ready or leaving it, its visibility, owner or groups changing — including through
``QuerySet.update()``, which no Django signal sees. ``documents_counteddocument`` remembers the
audience each ready document is counted in. Python never writes these tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.postgres.fields import ArrayField
from django.db import models

# The lexeme whose count is the number of chunks itself (no real lexeme is empty).
CHUNKS = ""


class Audience(models.Model):
    """The readers of some ready documents: everyone signed in (``shared``), or ``owner_id``
    and the members of ``groups`` (empty for a private document). Created by the triggers."""

    shared = models.BooleanField()
    owner_id = models.BigIntegerField()  # 0 for shared: no foreign key, the triggers own these rows
    groups = ArrayField(models.BigIntegerField())

    class Meta:
        db_table = "documents_audience"
        constraints = [
            models.UniqueConstraint(fields=["shared", "owner_id", "groups"], name="audience_unique_readers"),
        ]

    def __str__(self) -> str:
        return "everyone signed in" if self.shared else f"owner {self.owner_id}, groups {self.groups}"


@dataclass(frozen=True)
class Frequencies:
    readable: int  # chunks of ready documents the reader may read
    frequencies: list[int]  # of them, how many contain each lexeme
    total: int  # chunks of all ready documents
    matches: list[int]  # of them, how many contain each lexeme (what the full-text index reads)


class LexemeCountQuerySet(models.QuerySet):
    def frequencies(self, user, lexemes: Sequence[str]) -> Frequencies:
        """``user``'s figures for ``lexemes``, and everyone's (see the module doc): one query."""
        from documents.models import READ_ALL_DOCUMENTS

        if user is None or not user.is_authenticated or not user.is_active:
            return Frequencies(0, [0] * len(lexemes), 0, [0] * len(lexemes))  # reads nothing
        if user.has_perm(READ_ALL_DOCUMENTS):
            admitted = models.Q()
        else:
            groups = list(user.groups.values_list("pk", flat=True))
            audiences = Audience.objects.filter(
                models.Q(shared=True) | models.Q(owner_id=user.pk) | models.Q(groups__overlap=groups)
            )
            admitted = models.Q(audience_id__in=audiences.values("pk"))
        rows = {
            lexeme: (readable or 0, total or 0)
            for lexeme, readable, total in self.filter(lexeme__in=[CHUNKS, *lexemes])
            .values("lexeme")
            .annotate(readable=models.Sum("chunks", filter=admitted), total=models.Sum("chunks"))
            .values_list("lexeme", "readable", "total")
        }
        counts = [rows.get(lexeme, (0, 0)) for lexeme in lexemes]
        chunks = rows.get(CHUNKS, (0, 0))
        return Frequencies(
            readable=int(chunks[0]),
            frequencies=[int(readable) for readable, _ in counts],
            total=int(chunks[1]),
            matches=[int(total) for _, total in counts],
        )


class LexemeCount(models.Model):
    """How many chunks of one audience's ready documents contain ``lexeme`` (the lexeme ``''``:
    how many chunks the audience has). Kept by the triggers of migration 0006."""

    # The primary key's index serves frequencies(): the rows of a query's lexemes, by audience.
    pk = models.CompositePrimaryKey("lexeme", "audience_id")
    lexeme = models.TextField()
    audience_id = models.BigIntegerField()
    chunks = models.BigIntegerField()

    objects = LexemeCountQuerySet.as_manager()

    class Meta:
        db_table = "documents_lexemecount"

    def __str__(self) -> str:
        return f"{self.lexeme!r} in audience {self.audience_id}: {self.chunks}"


class CountedDocument(models.Model):
    """A ready document whose chunks are in the counts, and the audience they are counted in."""

    document_id = models.BigIntegerField(primary_key=True)
    audience_id = models.BigIntegerField()

    class Meta:
        db_table = "documents_counteddocument"

    def __str__(self) -> str:
        return f"document {self.document_id} counted in audience {self.audience_id}"
