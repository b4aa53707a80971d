"""Keep each chunk's embedding and compressed tsvector inside its row.

A chunk row holds a 384-float embedding (1,540 bytes), its text and its tsvector: above the
2 kB TOAST threshold, so Postgres used to move the embedding, and often the tsvector, to the
TOAST table. Every exact distance and every full-text score then fetched them from there
(docs/benchmarks.md, "Retrieval at scale"). With the embedding stored PLAIN and rows toasted
only above 8 kB, both stay in the row. Rows written before this migration keep their layout
until they are rewritten (a re-index, or ``VACUUM FULL documents_chunk``: docs/operations.md).
"""

from django.db import migrations

INLINE = """
ALTER TABLE documents_chunk ALTER COLUMN embedding SET STORAGE PLAIN;
ALTER TABLE documents_chunk SET (toast_tuple_target = 8160);
"""
TOASTED = """
ALTER TABLE documents_chunk ALTER COLUMN embedding SET STORAGE EXTERNAL;
ALTER TABLE documents_chunk RESET (toast_tuple_target);
"""


class Migration(migrations.Migration):
    dependencies = [("documents", "0006_full_text_statistics")]

    operations = [migrations.RunSQL(INLINE, TOASTED)]
