"""Keep the full-text statistics per statement, not per document.

Migration 0006 moved a document's lexeme counts to its new audience from a trigger that ran
once per changed row: when an ingestion run marked 256 small documents ready in one UPDATE,
that was 256 upserts of a few hundred lexemes each, most of them the same words (about 1.6 s
per 1,000 SciFact abstracts, a tenth of the worker's time). Here every trigger on documents and
their groups hands all the rows its statement changed to ``kb_recount_documents``, which moves
them with one upsert per direction, summed over the documents first. Its upserts still go in
(lexeme, audience) order, so concurrent statements lock counts in one order.

PostgreSQL allows transition tables only on triggers without a column list and with one event,
so the UPDATE trigger runs on every update of a document and picks the rows whose status,
visibility or owner changed itself (a join of two small in-memory tables).
"""

import importlib

from django.db import migrations

RECOUNT_SQL = r"""
DROP TRIGGER kb_document_inserted ON documents_document;
DROP TRIGGER kb_document_changed ON documents_document;
DROP TRIGGER kb_document_deleted ON documents_document;
DROP FUNCTION kb_document_changed();
DROP TRIGGER kb_document_groups_changed ON documents_document_groups;
DROP FUNCTION kb_document_groups_changed();
DROP FUNCTION kb_recount_document(bigint);
DROP FUNCTION kb_count_document(bigint, bigint, integer);
DROP FUNCTION kb_audience_of(documents_document);

-- The readers of each of the documents ids that is ready (its audience's key).
CREATE FUNCTION kb_readers_of(ids bigint[])
RETURNS TABLE (document_id bigint, shared boolean, owner_id bigint, groups bigint[])
LANGUAGE sql STABLE AS $$
    SELECT d.id, d.visibility = 'shared', CASE WHEN d.visibility = 'shared' THEN 0 ELSE d.owner_id END,
           CASE WHEN d.visibility = 'groups' THEN coalesce(
               (SELECT array_agg(g.group_id ORDER BY g.group_id)
                FROM documents_document_groups g WHERE g.document_id = d.id), '{}')
           ELSE '{}' END
    FROM documents_document d
    WHERE d.id = ANY(ids) AND d.status = 'ready'
$$;

-- Add (sign 1) or take away (sign -1) the chunks of documents ids[i] in audiences audiences[i],
-- summed per (lexeme, audience) before the upsert.
CREATE FUNCTION kb_count_documents(ids bigint[], audiences bigint[], sign integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO documents_lexemecount (lexeme, audience_id, chunks)
    SELECT lexeme, audience, sign * count(*)
    FROM (
        SELECT unnest(tsvector_to_array(c.search_vector) || ''::text) AS lexeme, counted.audience
        FROM unnest(ids, audiences) AS counted(document_id, audience)
        JOIN documents_chunk c ON c.document_id = counted.document_id
        WHERE counted.audience IS NOT NULL
    ) AS words
    GROUP BY lexeme, audience ORDER BY lexeme, audience
    ON CONFLICT (lexeme, audience_id) DO UPDATE SET chunks = documents_lexemecount.chunks + EXCLUDED.chunks;
$$;

-- Move the counts of documents ids (deleted ones too) to the audience each belongs to now,
-- where that changed.
CREATE FUNCTION kb_recount_documents(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    moved bigint[];
    was_in bigint[];
    now_in bigint[];
BEGIN
    ids := ARRAY(SELECT DISTINCT id FROM unnest(ids) AS given(id) WHERE id IS NOT NULL ORDER BY id);
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM documents_document WHERE id = ANY(ids) ORDER BY id FOR UPDATE;
    INSERT INTO documents_audience (shared, owner_id, groups)
    SELECT DISTINCT r.shared, r.owner_id, r.groups FROM kb_readers_of(ids) r ORDER BY 1, 2, 3
    ON CONFLICT (shared, owner_id, groups) DO NOTHING;
    SELECT array_agg(m.id ORDER BY m.id), array_agg(m.was ORDER BY m.id), array_agg(m.now ORDER BY m.id)
    INTO moved, was_in, now_in
    FROM (
        SELECT doc.id, counted.audience_id AS was, a.id AS now
        FROM unnest(ids) AS doc(id)
        LEFT JOIN documents_counteddocument counted ON counted.document_id = doc.id
        LEFT JOIN kb_readers_of(ids) r ON r.document_id = doc.id
        LEFT JOIN documents_audience a ON a.shared = r.shared AND a.owner_id = r.owner_id AND a.groups = r.groups
    ) AS m
    WHERE m.was IS DISTINCT FROM m.now;
    IF moved IS NULL THEN
        RETURN;
    END IF;
    PERFORM kb_count_documents(moved, was_in, -1);
    DELETE FROM documents_counteddocument WHERE document_id = ANY(moved);
    PERFORM kb_count_documents(moved, now_in, 1);
    INSERT INTO documents_counteddocument (document_id, audience_id)
    SELECT m.id, m.now FROM unnest(moved, now_in) AS m(id, now) WHERE m.now IS NOT NULL;
END $$;

-- PL/pgSQL plans a statement when it first runs it, so each branch names only the transition
-- tables its trigger defines.
CREATE FUNCTION kb_documents_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM kb_recount_documents(ARRAY(SELECT id FROM new_documents WHERE status = 'ready'));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM kb_recount_documents(ARRAY(SELECT id FROM old_documents));
    ELSE
        PERFORM kb_recount_documents(ARRAY(
            SELECT n.id FROM new_documents n JOIN old_documents o ON o.id = n.id
            WHERE o.status IS DISTINCT FROM n.status OR o.visibility IS DISTINCT FROM n.visibility
               OR o.owner_id IS DISTINCT FROM n.owner_id
        ));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER kb_documents_inserted AFTER INSERT ON documents_document
    REFERENCING NEW TABLE AS new_documents FOR EACH STATEMENT EXECUTE FUNCTION kb_documents_changed();
CREATE TRIGGER kb_documents_updated AFTER UPDATE ON documents_document
    REFERENCING OLD TABLE AS old_documents NEW TABLE AS new_documents
    FOR EACH STATEMENT EXECUTE FUNCTION kb_documents_changed();
CREATE TRIGGER kb_documents_deleted AFTER DELETE ON documents_document
    REFERENCING OLD TABLE AS old_documents FOR EACH STATEMENT EXECUTE FUNCTION kb_documents_changed();

CREATE FUNCTION kb_document_groups_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM kb_recount_documents(ARRAY(SELECT document_id FROM new_links));
    ELSE
        PERFORM kb_recount_documents(ARRAY(SELECT document_id FROM old_links));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER kb_document_groups_inserted AFTER INSERT ON documents_document_groups
    REFERENCING NEW TABLE AS new_links FOR EACH STATEMENT EXECUTE FUNCTION kb_document_groups_changed();
CREATE TRIGGER kb_document_groups_deleted AFTER DELETE ON documents_document_groups
    REFERENCING OLD TABLE AS old_links FOR EACH STATEMENT EXECUTE FUNCTION kb_document_groups_changed();
"""

# Back to migration 0006's per-row triggers (its counts stay valid: both keep the same tables).
PER_ROW_SQL = r"""
DROP TRIGGER kb_document_groups_inserted ON documents_document_groups;
DROP TRIGGER kb_document_groups_deleted ON documents_document_groups;
DROP FUNCTION kb_document_groups_changed();
DROP TRIGGER kb_documents_inserted ON documents_document;
DROP TRIGGER kb_documents_updated ON documents_document;
DROP TRIGGER kb_documents_deleted ON documents_document;
DROP FUNCTION kb_documents_changed();
DROP FUNCTION kb_recount_documents(bigint[]);
DROP FUNCTION kb_count_documents(bigint[], bigint[], integer);
DROP FUNCTION kb_readers_of(bigint[]);
"""


def _per_row_definitions() -> str:
    """Migration 0006's functions and document triggers (not its chunk triggers, which stay)."""
    sql = importlib.import_module("documents.migrations.0006_full_text_statistics").COUNT_SQL
    return sql[: sql.index("-- Chunks of counted documents")]


class Migration(migrations.Migration):
    dependencies = [("documents", "0007_chunk_storage_inline")]

    operations = [migrations.RunSQL(RECOUNT_SQL, PER_ROW_SQL + _per_row_definitions())]
