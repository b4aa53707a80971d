"""Uploads become searchable chunks in the background: every format end to end, with the real
MiniLM model and the real Postgres; exactly one set of chunks whatever happens; clear failures."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models.functions import Now
from django.utils import timezone
from pgvector.django import CosineDistance

from documents import embeddings, services, tasks
from documents.extraction import ExtractionError
from documents.models import Chunk, Document, DocumentFile, Status, Visibility
from documents.services import UploadError, upload_document
from tests.documents.samples import make_docx, make_image_only_pdf, make_pdf, make_png

pytestmark = pytest.mark.django_db

LONG_PARAGRAPH = (
    "Postgres stores every chunk of every document together with its embedding vector. "
    "The HNSW index answers nearest-neighbour queries quickly, and the GIN index serves full-text search. "
) * 12


@pytest.fixture
def ingest(django_capture_on_commit_callbacks):
    """Upload through the service and run the queued ingestion (Q_SYNC runs it in-process)."""

    def run(owner, file_name: str, data: bytes, **kwargs) -> Document:
        with django_capture_on_commit_callbacks(execute=True):
            document, _ = upload_document(owner, file_name=file_name, data=data, **kwargs)
        document.refresh_from_db()
        return document

    return run


@pytest.fixture
def upload_only(django_capture_on_commit_callbacks):
    """Upload through the service but leave the queued ingestion for the test to run."""

    def run(owner, file_name: str, data: bytes, **kwargs) -> Document:
        with django_capture_on_commit_callbacks(execute=False):
            document, _ = upload_document(owner, file_name=file_name, data=data, **kwargs)
        return document

    return run


def assert_one_complete_set(document: Document) -> list[Chunk]:
    document.refresh_from_db()
    assert document.status == Status.READY, document.error
    chunks = list(document.chunks.order_by("ordinal"))
    assert chunks
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    assert document.progress_done == document.progress_total == len(chunks)
    assert document.embedding_model == embeddings.model_name()
    assert document.ingested is not None
    limit = embeddings.max_tokens()
    for chunk in chunks:
        assert chunk.token_count == embeddings.count_tokens(chunk.text) <= limit
        assert np.isclose(np.linalg.norm(chunk.embedding), 1.0, atol=1e-3)
    return chunks


def nearest(document: Document, question: str) -> Chunk:
    query = embeddings.embed_query(question)
    return document.chunks.order_by(CosineDistance("embedding", query)).first()


# -- every format, end to end -------------------------------------------------------------------


def test_a_pdf_becomes_chunks_that_cite_their_pages(alice, ingest):
    data = make_pdf(
        [
            ["Installing kb on Linux needs Python 3.11 and make.", "Run make run to start the site."],
            ["Backups: pg_dump saves every document, chunk and conversation."],
            ["The chat page streams answers token by token over a websocket."],
        ]
    )
    document = ingest(alice, "manual.pdf", data, title="Manual")
    chunks = assert_one_complete_set(document)
    assert document.mime_type == "application/pdf"
    assert [(chunk.location, chunk.page) for chunk in chunks] == [("page 1", 1), ("page 2", 2), ("page 3", 3)]
    assert nearest(document, "how do I back up the database?").page == 2


def test_a_long_pdf_page_is_split_into_several_chunks_of_that_page(alice, ingest):
    lines = [LONG_PARAGRAPH[i : i + 90] for i in range(0, len(LONG_PARAGRAPH), 90)]
    document = ingest(alice, "long.pdf", make_pdf([lines[:40], ["A short second page."]]))
    chunks = assert_one_complete_set(document)
    assert len(chunks) > 2
    assert {chunk.location for chunk in chunks[:-1]} == {"page 1"}
    assert chunks[-1].location == "page 2"


def test_a_docx_becomes_chunks_located_by_heading_path(alice, ingest):
    data = make_docx(
        [
            ("h1", "Install"),
            ("p", "Download the installer from the releases page."),
            ("h2", "Linux"),
            ("p", "On Debian, install the package with apt and start the service."),
            ("h1", "Usage"),
            ("p", "Open the chat page and ask a question about your documents."),
        ]
    )
    document = ingest(alice, "guide.docx", data)
    chunks = assert_one_complete_set(document)
    assert [chunk.location for chunk in chunks] == ["Install", "Install › Linux", "Usage"]
    assert nearest(document, "debian apt").location == "Install › Linux"


def test_markdown_becomes_chunks_located_by_heading_path(alice, ingest):
    data = (
        "# Operations\n\nHow to run kb.\n\n## Backups\n\nRun pg_dump every night.\n\n"
        f"## Scaling\n\n{LONG_PARAGRAPH}\n\n# FAQ\n\nAsk the admin.\n"
    ).encode()
    document = ingest(alice, "ops.md", data)
    chunks = assert_one_complete_set(document)
    assert document.mime_type == "text/markdown"
    locations = [chunk.location for chunk in chunks]
    assert locations[:2] == ["Operations", "Operations › Backups"]
    assert locations.count("Operations › Scaling") > 1
    assert locations[-1] == "FAQ"


def test_html_becomes_chunks_without_scripts_or_navigation(alice, ingest):
    data = (
        b"<html><head><script>var tracking = 1;</script></head><body><nav>Home About Contact</nav>"
        b"<h1>Release notes</h1><p>Version 2 adds streaming answers.</p>"
        b"<h2>Upgrade</h2><p>Run the migrations before starting the new version.</p></body></html>"
    )
    document = ingest(alice, "notes.html", data)
    chunks = assert_one_complete_set(document)
    assert [chunk.location for chunk in chunks] == ["Release notes", "Release notes › Upgrade"]
    text = " ".join(chunk.text for chunk in chunks)
    assert "tracking" not in text and "Contact" not in text


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "latin-1"])
def test_text_in_odd_encodings_is_read_correctly(alice, ingest, encoding):
    text = "Crème brûlée à la carte.\n\nLe café est prêt à côté de la fenêtre."
    document = ingest(alice, f"menu-{encoding}.txt", text.encode(encoding))
    chunks = assert_one_complete_set(document)
    assert chunks[0].text == "Crème brûlée à la carte.\n\nLe café est prêt à côté de la fenêtre."
    assert chunks[0].location == ""


def test_very_long_lines_are_split_and_nothing_is_truncated(alice, ingest):
    words = ("token " * 3000) + ("x" * 20000) + (" final words")
    document = ingest(alice, "one-line.txt", words.encode())
    chunks = assert_one_complete_set(document)
    assert len(chunks) > 10
    assert chunks[-1].text.endswith("final words")


def test_the_chunk_size_setting_makes_smaller_chunks(alice, ingest, settings):
    settings.CHUNK_MAX_TOKENS = 64
    document = ingest(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    chunks = assert_one_complete_set(document)
    assert len(chunks) > 10
    assert max(chunk.token_count for chunk in chunks) <= 64


def test_a_chunk_size_above_the_model_limit_is_capped_at_the_limit(alice, ingest, settings):
    settings.CHUNK_MAX_TOKENS = 10_000
    document = ingest(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    assert len(assert_one_complete_set(document)) > 1


# -- exactly one set of chunks ------------------------------------------------------------------


def test_running_the_task_twice_leaves_one_set_of_chunks(alice, ingest):
    document = ingest(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    first = [(c.ordinal, c.text) for c in assert_one_complete_set(document)]
    tasks.ingest_document(document.pk, document.ingest_generation)
    tasks.ingest_document(document.pk)
    assert [(c.ordinal, c.text) for c in assert_one_complete_set(document)] == first
    assert Chunk.objects.count() == len(first)


def test_reindexing_replaces_the_chunks_instead_of_adding_to_them(alice, ingest, django_capture_on_commit_callbacks):
    document = ingest(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    count = len(assert_one_complete_set(document))
    with django_capture_on_commit_callbacks(execute=True):
        services.reindex_document(document)
    assert len(assert_one_complete_set(document)) == count
    assert document.ingest_generation == 2


def test_a_stale_run_writes_nothing_and_the_current_run_completes(alice, ingest, django_capture_on_commit_callbacks):
    document = ingest(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    count = len(assert_one_complete_set(document))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.start_ingestion(document)
    assert len(queued) == 1
    assert document.ingest_generation == 2

    tasks.ingest_document(document.pk, 1)  # e.g. a retry of the first run, delivered late
    document.refresh_from_db()
    assert document.status == Status.PENDING
    assert document.chunks.count() == count

    queued[0]()
    assert len(assert_one_complete_set(document)) == count


def test_a_run_superseded_while_embedding_stops_and_the_newer_run_wins(
    alice, upload_only, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.EMBEDDING_BATCH_SIZE = 2
    document = upload_only(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    real_embed = embeddings.embed_texts
    newer = []

    def embed_then_reindex(texts, batch_size=None):
        if not newer:  # someone presses "re-index" while the first batch is embedding
            with django_capture_on_commit_callbacks(execute=False) as queued:
                services.reindex_document(Document.objects.get(pk=document.pk))
            newer.extend(queued)
        return real_embed(texts, batch_size)

    monkeypatch.setattr(embeddings, "embed_texts", embed_then_reindex)
    tasks.ingest_document(document.pk, 1)
    document.refresh_from_db()
    assert document.status == Status.PENDING
    assert document.progress_done == 0
    assert document.chunks.count() == 0

    monkeypatch.setattr(embeddings, "embed_texts", real_embed)
    newer[0]()
    assert_one_complete_set(document)


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the task may catch it."""


def test_a_worker_killed_mid_way_is_finished_by_a_new_run_once_its_lease_runs_out(
    alice, upload_only, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.EMBEDDING_BATCH_SIZE = 1  # one encode call per _BATCHES_PER_CALL chunks
    settings.CHUNK_MAX_TOKENS = 48
    document = upload_only(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    real_embed = embeddings.embed_texts
    calls = []

    def embed_then_die(texts, batch_size=None):
        calls.append(len(texts))
        if len(calls) == 2:
            raise WorkerKilled
        return real_embed(texts, batch_size)

    monkeypatch.setattr(embeddings, "embed_texts", embed_then_die)
    with pytest.raises(WorkerKilled):
        tasks.ingest_document(document.pk, 1)
    document.refresh_from_db()
    assert document.status == Status.PROCESSING
    per_call = tasks._BATCHES_PER_CALL
    assert document.progress_done == per_call and document.progress_total > per_call
    assert document.lease_owner and document.lease_expires > timezone.now()
    assert document.chunks.count() == 0

    # While the lease lives, a copy of the task (django-q2 re-delivers after Q_RETRY) and the
    # sweep leave the document to its run.
    monkeypatch.setattr(embeddings, "embed_texts", real_embed)
    tasks.ingest_document(document.pk, 1)
    assert tasks.sweep_expired_leases() == 0
    document.refresh_from_db()
    assert (document.status, document.progress_done, document.ingest_generation) == (Status.PROCESSING, per_call, 1)

    Document.objects.filter(pk=document.pk).update(lease_expires=Now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_expired_leases() == 1
    assert_one_complete_set(document)
    assert (document.ingest_generation, document.lease_losses) == (2, 1)
    assert (document.lease_owner, document.lease_expires) == ("", None)


def test_a_worker_killed_during_reindex_keeps_the_old_chunks_until_the_rerun_replaces_them(
    alice, ingest, monkeypatch, django_capture_on_commit_callbacks
):
    document = ingest(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    count = len(assert_one_complete_set(document))
    with django_capture_on_commit_callbacks(execute=False):
        services.reindex_document(document)

    def die(texts, batch_size=None):
        raise WorkerKilled

    real_embed = embeddings.embed_texts
    monkeypatch.setattr(embeddings, "embed_texts", die)
    with pytest.raises(WorkerKilled):
        tasks.ingest_document(document.pk, 2)
    assert document.chunks.count() == count

    monkeypatch.setattr(embeddings, "embed_texts", real_embed)
    Document.objects.filter(pk=document.pk).update(lease_expires=Now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_expired_leases() == 1
    assert len(assert_one_complete_set(document)) == count
    assert document.ingest_generation == 3


def test_an_embedding_error_fails_the_document_and_a_reindex_recovers_it(
    alice, ingest, monkeypatch, django_capture_on_commit_callbacks
):
    real_embed = embeddings.embed_texts

    def broken(texts, batch_size=None):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(embeddings, "embed_texts", broken)
    document = ingest(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    assert document.status == Status.FAILED
    # A readable reason; the raw exception text is for the worker's log only.
    assert document.error == tasks.UNEXPECTED_FAILURE
    assert document.chunks.count() == 0

    monkeypatch.setattr(embeddings, "embed_texts", real_embed)
    with django_capture_on_commit_callbacks(execute=True):
        services.reindex_document(document)
    assert_one_complete_set(document)
    assert document.error == ""


def test_a_failed_reindex_leaves_no_chunks_behind(alice, ingest, monkeypatch, django_capture_on_commit_callbacks):
    document = ingest(alice, "ops.md", f"# Ops\n\n{LONG_PARAGRAPH}".encode())
    assert_one_complete_set(document)

    def unreadable(data, mime_type):
        raise ExtractionError("no text found")

    monkeypatch.setattr(tasks, "extract", unreadable)
    with django_capture_on_commit_callbacks(execute=True):
        services.reindex_document(document)
    document.refresh_from_db()
    assert document.status == Status.FAILED
    assert document.error == "no text found"
    assert document.chunks.count() == 0
    assert document.embedding_model == ""


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj garbage\n", "this PDF is damaged and cannot be read"),
        (
            make_pdf([["Top secret."]], password="hunter2"),
            "this PDF is encrypted — remove the password and upload it again",
        ),
        (make_image_only_pdf(), "no text found — scanned PDF?"),
    ],
    ids=["corrupt", "encrypted", "scanned"],
)
def test_unreadable_pdfs_fail_with_a_readable_message_and_no_chunks(alice, ingest, data, message):
    document = ingest(alice, "bad.pdf", data)
    assert document.status == Status.FAILED
    assert document.error == message
    assert document.chunks.count() == 0
    assert document.progress_done == document.progress_total == 0


def test_a_failing_document_does_not_block_the_next_one(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        broken, _ = upload_document(alice, file_name="broken.pdf", data=b"%PDF-1.7\ngarbage")
        good, _ = upload_document(alice, file_name="good.md", data=b"# Good\n\nThis one works.")
    broken.refresh_from_db()
    assert broken.status == Status.FAILED
    assert broken.chunks.count() == 0
    assert_one_complete_set(good)


def test_a_document_whose_bytes_are_missing_fails_with_a_readable_message(alice, upload_only):
    document = upload_only(alice, "a.md", b"# A\n\nText.")
    DocumentFile.objects.filter(document=document).delete()
    tasks.ingest_document(document.pk, 1)
    document.refresh_from_db()
    assert document.status == Status.FAILED
    assert document.error == "the uploaded file is missing — upload it again"


def test_a_deleted_document_makes_its_queued_task_return_quietly(alice, upload_only):
    document = upload_only(alice, "a.md", b"# A\n\nText.")
    document_id = document.pk
    services.delete_document(document)
    tasks.ingest_document(document_id, 1)
    assert not Document.objects.filter(pk=document_id).exists()


# -- uploads ------------------------------------------------------------------------------------


def test_an_upload_is_stored_pending_and_queued_once_it_commits(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        document, created = upload_document(alice, file_name="../secret/notes_v2.md", data=b"# Notes\n\nHello.")
    assert created
    assert len(queued) == 1
    document.refresh_from_db()
    assert document.status == Status.PENDING
    assert document.ingest_generation == 1
    assert document.original_name == "notes_v2.md"
    assert document.title == "notes v2"
    assert document.size == len(b"# Notes\n\nHello.")
    assert bytes(document.file.data) == b"# Notes\n\nHello."
    assert len(document.sha256) == 64


def test_the_same_bytes_uploaded_twice_by_one_owner_are_one_document(alice, bob, ingest):
    data = b"# Notes\n\nThe same file twice."
    first = ingest(alice, "notes.md", data, title="First")
    again, created = upload_document(alice, file_name="copy.md", data=data, title="Second", visibility="shared")
    assert not created
    assert again.pk == first.pk
    again.refresh_from_db()
    assert (again.title, again.visibility, again.ingest_generation) == ("First", Visibility.PRIVATE, 1)
    assert Document.objects.filter(owner=alice).count() == 1
    assert first.chunks.count() == 1

    bobs, created = upload_document(bob, file_name="notes.md", data=data)
    assert created and bobs.pk != first.pk


def test_group_visibility_keeps_the_chosen_groups_and_other_visibilities_ignore_them(alice, team, upload_only):
    shared = upload_only(alice, "team.md", b"# Team\n\nFor the team.", visibility=Visibility.GROUPS, groups=[team])
    assert list(shared.groups.all()) == [team]
    private = upload_only(alice, "mine.md", b"# Mine\n\nOnly me.", visibility=Visibility.PRIVATE, groups=[team])
    assert private.groups.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"file_name": "empty.txt", "data": b""}, "empty", "The file is empty."),
        (
            {"file_name": "big.txt", "data": b"x" * 101},
            "too_large",
            "big.txt is 101 bytes; the largest file you can upload is 100 bytes.",
        ),
        (
            {"file_name": "photo.png", "data": make_png()},
            "unsupported",
            "photo.png is a PNG image, which is not supported. "
            "Upload a PDF, Word (.docx), Markdown, HTML or plain-text file.",
        ),
        (
            {"file_name": "report.pdf", "data": b"not a pdf"},
            "unsupported",
            "report.pdf is not a PDF (looks like plain text).",
        ),
        ({"file_name": "a.txt", "data": b"text", "visibility": "public"}, "invalid", "Unknown visibility 'public'."),
        (
            {"file_name": "a.txt", "data": b"text", "visibility": "groups"},
            "invalid",
            "Choose at least one group to share the document with.",
        ),
    ],
    ids=["empty", "too-large", "image", "mislabelled-pdf", "bad-visibility", "groups-without-groups"],
)
def test_bad_uploads_are_refused_clearly_and_store_nothing(alice, settings, kwargs, code, message):
    settings.UPLOAD_MAX_BYTES = 100
    with pytest.raises(UploadError) as error:
        upload_document(alice, **kwargs)
    assert (error.value.code, error.value.message) == (code, message)
    assert Document.objects.count() == 0
    assert DocumentFile.objects.count() == 0


def test_deleting_a_document_deletes_its_chunks_and_bytes(alice, ingest):
    document = ingest(alice, "a.md", b"# A\n\nSome text to delete.")
    assert_one_complete_set(document)
    services.delete_document(document)
    assert Document.objects.count() == 0
    assert Chunk.objects.count() == 0
    assert DocumentFile.objects.count() == 0


# -- the embedding seam -------------------------------------------------------------------------


def test_query_and_text_embeddings_are_normalised_vectors_of_the_column_size():
    vectors = embeddings.embed_texts(["first passage", "second passage"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    query = embeddings.embed_query("a question")
    assert query.shape == (384,)
    assert embeddings.max_tokens() == 256
    assert embeddings.count_tokens("hello world") == 4  # [CLS] hello world [SEP]


def test_a_model_of_the_wrong_dimension_is_refused_with_a_clear_error(settings):
    settings.EMBEDDING_DIMENSIONS = 768
    with pytest.raises(embeddings.EmbeddingModelError, match="384-dimensional vectors, but the database stores 768"):
        embeddings._load()


def test_a_missing_model_folder_is_a_clear_error(settings, tmp_path):
    settings.EMBEDDING_MODEL = str(tmp_path / "nowhere")
    settings.EMBEDDING_BACKEND = "onnx"
    assert embeddings.model_name() == f"{tmp_path / 'nowhere'}@onnx-int8"
    with pytest.raises(embeddings.EmbeddingModelError, match="is not a folder"):
        embeddings.model_path()


def test_the_default_model_is_found_in_its_package(settings):
    settings.EMBEDDING_BACKEND = "openvino"
    assert embeddings.model_name() == "sentence-transformers/all-MiniLM-L6-v2@openvino-bf16"
    assert (embeddings.model_path() / "modules.json").is_file()


# -- management commands ------------------------------------------------------------------------


@pytest.fixture
def command(django_capture_on_commit_callbacks):
    """Run a management command, then the ingestions it queued; return what it printed."""

    def run(*args, **kwargs) -> str:
        out = io.StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
        return out.getvalue()

    return run


def test_reindex_all_requeues_every_document_and_keeps_one_set_each(command, alice, bob, ingest):
    first = ingest(alice, "a.md", b"# A\n\nAlpha text.")
    second = ingest(bob, "b.md", b"# B\n\nBeta text.")
    assert "queued 2 of 2 documents" in command("reindex", "--all")
    for document in (first, second):
        assert_one_complete_set(document)
        assert document.ingest_generation == 2


def test_reindex_by_id_or_uuid_requeues_only_those(command, alice, ingest):
    first = ingest(alice, "a.md", b"# A\n\nAlpha text.")
    second = ingest(alice, "b.md", b"# B\n\nBeta text.")
    assert "queued 1 of 2 documents" in command("reindex", str(first.pk))
    assert "queued 1 of 2 documents" in command("reindex", str(second.public_id))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.ingest_generation, second.ingest_generation) == (2, 2)


def test_reindex_model_changed_requeues_only_documents_embedded_with_another_model(command, alice, ingest):
    current = ingest(alice, "a.md", b"# A\n\nAlpha text.")
    outdated = ingest(alice, "b.md", b"# B\n\nBeta text.")
    Document.objects.filter(pk=outdated.pk).update(embedding_model="some/older-model")
    output = command("reindex", "--model-changed")
    assert "queued 1 of 2 documents" in output
    current.refresh_from_db()
    assert current.ingest_generation == 1
    assert_one_complete_set(outdated)
    assert outdated.ingest_generation == 2


def test_reindex_refuses_unclear_requests(command, alice, ingest):
    with pytest.raises(CommandError, match="give document ids"):
        command("reindex")
    with pytest.raises(CommandError, match="do not exist"):
        command("reindex", "999999")
    with pytest.raises(CommandError, match="not a document id"):
        command("reindex", "not-an-id")


@pytest.fixture
def sample_docs(tmp_path) -> Path:
    (tmp_path / "getting-started.md").write_text("# Getting started\n\nType make run, then sign in.\n")
    (tmp_path / "operations.md").write_text("# Operations\n\nBack up with pg_dump.\n")
    (tmp_path / "notes.txt").write_text("not markdown, not loaded")
    return tmp_path


def test_load_sample_docs_shares_the_docs_as_the_first_admin_once(command, admin_user, alice, sample_docs):
    output = command("load_sample_docs", path=str(sample_docs))
    assert "Queued 2 sample documents" in output
    documents = Document.objects.order_by("title")
    assert [(d.title, d.owner, d.visibility) for d in documents] == [
        ("Getting started", admin_user, Visibility.SHARED),
        ("Operations", admin_user, Visibility.SHARED),
    ]
    for document in documents:
        assert_one_complete_set(document)

    assert "has documents already" in command("load_sample_docs", path=str(sample_docs))
    assert Document.objects.count() == 2


def test_load_sample_docs_says_when_there_is_nothing_to_load(command, admin_user, tmp_path):
    assert "has no .md files" in command("load_sample_docs", path=str(tmp_path))
    assert "has no .md files" in command("load_sample_docs", path=str(tmp_path / "missing"))
    assert Document.objects.count() == 0


def test_load_sample_docs_waits_for_an_admin(command, alice, sample_docs):
    assert "No admin account yet" in command("load_sample_docs", path=str(sample_docs))
    assert Document.objects.count() == 0


def test_the_projects_own_docs_load_as_the_sample_knowledge_base(command, admin_user):
    output = command("load_sample_docs")
    files = sorted(Path(__file__).resolve().parents[2].joinpath("docs").glob("*.md"))
    assert files, "docs/ should hold the user and operator guides"
    assert f"Queued {len(files)} sample document" in output
    for document in Document.objects.all():
        assert document.visibility == Visibility.SHARED
        assert_one_complete_set(document)


def test_chunks_copied_in_read_back_exactly_as_written(alice):
    """``Chunk.objects.copy_in`` (the worker's binary COPY) stores every field as given: the
    vector's float32 values bit for bit, a missing page as NULL, text with any characters."""
    document = Document.objects.create(
        owner=alice, title="Copy", original_name="c.txt", mime_type="text/plain", size=1, sha256="c" * 64
    )
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3, 384)).astype(np.float32)
    texts = ["plain", "tabs\tnew\nlines \\ and \u00e9 \U0001f600", ""]
    written = Chunk.objects.copy_in(
        Chunk(
            document=document,
            ordinal=i,
            text=text,
            token_count=i + 1,
            location=f"page {i}" if i else "",
            page=i or None,
            embedding=vector,
        )
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    )
    assert written == 3
    stored = list(document.chunks.order_by("ordinal"))
    assert [(c.text, c.token_count, c.location, c.page) for c in stored] == [
        ("plain", 1, "", None),
        (texts[1], 2, "page 1", 1),
        ("", 3, "page 2", 2),
    ]
    for chunk, vector in zip(stored, vectors, strict=True):
        assert np.array_equal(np.asarray(chunk.embedding, dtype=np.float32), vector)
