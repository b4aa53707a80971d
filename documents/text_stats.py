"""Full-text statistics kept up to date by the database: how many readable chunks contain each
word, for every reader, without counting chunks per query.

Contract: ``LexemeCount.objects.frequencies(user, text)`` returns ``Frequencies``: the lexemes
of ``text`` (as Postgres normalises the chunks' words), how many chunks of ready documents
``user`` may read (``Chunk.objects.visible_to``) and how many of them contain each lexeme, and
the same over all ready documents. Exact, in one indexed query over a few rows per lexeme.

How: every ready document belongs to one *audience*, the readers its visibility admits —
everyone signed in (shared), its owner alone (private), or its owner and some groups (shared
with groups) — and ``documents_lexemecount`` holds, per audience and lexeme, how many of the
audience's chunks contain the lexeme (the lexeme ``''`` counts the chunks themselves). A
reader's figures are the sums over the audiences admitting them: disjoint sets of documents,
so the sums are exact, and no reader's figures depend on what others' private documents say
(a shared document frequency would let scores reveal whether a word occurs in documents one
may not read).

Database triggers keep the counts (migrations 0006 and 0008), because every path that changes
them must: chunks inserted, deleted or edited (ingestion, re-index, deletion, the admin), a
document becoming ready or leaving it, its visibility, owner or groups changing — including
through ``QuerySet.update()``, which no Django signal sees. Each trigger runs once per
statement, summing the words of all the rows it changed before it counts them.
``documents_counteddocument`` remembers the audience each ready document is counted in. Python
never writes these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.postgres.fields import ArrayField
from django.db import connection, models

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
    lexemes: list[str]  # the question's lexemes, as Postgres normalises the chunks' words
    readable: int  # chunks of ready documents the reader may read
    frequencies: list[int]  # of them, how many contain each lexeme
    total: int  # chunks of all ready documents
    matches: list[int]  # of them, how many contain each lexeme (what the full-text index reads)


# The question's lexemes (the chunks' own 'english' configuration, so stemming and stop words
# match) with CHUNKS, each with its count among the audiences admitting the reader and overall.
_FREQUENCIES_SQL = """
SELECT words.lexeme,
       coalesce(sum(counts.chunks) FILTER (WHERE {admitted}), 0),
       coalesce(sum(counts.chunks), 0)
FROM (SELECT unnest(tsvector_to_array(to_tsvector('english', %(text)s)) || %(chunks)s::text) AS lexeme) AS words
LEFT JOIN documents_lexemecount AS counts ON counts.lexeme = words.lexeme
GROUP BY words.lexeme
"""
_ADMITTED_SQL = """counts.audience_id IN (
    SELECT id FROM documents_audience
    WHERE shared OR owner_id = %(user)s
       OR groups && ARRAY(SELECT group_id FROM auth_user_groups WHERE user_id = %(user)s)::bigint[])"""


class LexemeCountQuerySet(models.QuerySet):
    def frequencies(self, user, text: str) -> Frequencies:
        """The lexemes of ``text`` with ``user``'s figures and everyone's (see the module doc),
        in one query: a search's only statistics."""
        from documents.models import READ_ALL_DOCUMENTS

        if user is None or not user.is_authenticated or not user.is_active:
            admitted = "false"  # reads nothing
        elif user.has_perm(READ_ALL_DOCUMENTS):
            admitted = "true"
        else:
            admitted = _ADMITTED_SQL
        with connection.cursor() as cursor:
            cursor.execute(
                _FREQUENCIES_SQL.format(admitted=admitted), {"text": text, "chunks": CHUNKS, "user": user and user.pk}
            )
            rows = {lexeme: (int(readable), int(total)) for lexeme, readable, total in cursor.fetchall()}
        chunks = rows.pop(CHUNKS, (0, 0))
        lexemes = sorted(rows)
        return Frequencies(
            lexemes=lexemes,
            readable=chunks[0],
            frequencies=[rows[lexeme][0] for lexeme in lexemes],
            total=chunks[1],
            matches=[rows[lexeme][1] for lexeme in lexemes],
        )


class LexemeCount(models.Model):
    """How many chunks of one audience's ready documents contain ``lexeme`` (the lexeme ``''``:
    how many chunks the audience has). Kept by the database's triggers."""

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
