"""Ingestion in batches across documents, under leases: one run embeds the chunks of many
small documents together, each document still ends ready or failed on its own with exactly one
chunk set, and documents whose worker died come back through their expired leases."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db.models.functions import Now
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from documents import embeddings, tasks
from documents.models import Chunk, Document, IngestionRequest, Status
from documents.services import upload_document
from tests.documents.test_ingestion import LONG_PARAGRAPH, assert_one_complete_set
from tests.documents.web_helpers import make_document
from tests.live import current_database_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(django_capture_on_commit_callbacks):
    """Upload documents without running their queued tasks; returns (documents, tasks to run)."""

    def run(owner, files: list[tuple[str, bytes]]) -> tuple[list[Document], list]:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            documents = [upload_document(owner, file_name=name, data=data)[0] for name, data in files]
        return documents, callbacks

    return run


@pytest.fixture
def encode_calls(monkeypatch):
    """Record the texts of every encode call (the real model still embeds them)."""
    real_embed = embeddings.embed_texts
    calls: list[list[str]] = []

    def recording(texts, batch_size=None):
        calls.append(list(texts))
        return real_embed(texts, batch_size)

    monkeypatch.setattr(embeddings, "embed_texts", recording)
    return calls


def small_files(count: int, prefix: str = "note") -> list[tuple[str, bytes]]:
    return [
        (f"{prefix}-{i}.txt", f"Note {i}: the {prefix} of plot {i} was watered at dawn.".encode()) for i in range(count)
    ]


def test_one_run_embeds_many_small_documents_in_one_encode_call(alice, queued, encode_calls):
    documents, callbacks = queued(alice, small_files(6))
    callbacks[0]()  # the first document's task
    assert len(encode_calls) == 1
    assert len(encode_calls[0]) == 6
    for document in documents:
        assert len(assert_one_complete_set(document)) == 1

    # The other tasks find their documents done and return quietly.
    for callback in callbacks[1:]:
        callback()
    assert len(encode_calls) == 1
    assert Chunk.objects.count() == 6


def test_a_queued_task_whose_document_another_run_holds_returns_quietly(alice, queued, encode_calls):
    documents, _ = queued(alice, small_files(2))
    run = tasks._Run()
    claimed = tasks._claim_pending(run, 10)
    assert [held.id for held in claimed] == [document.pk for document in documents]
    tasks.ingest_document(documents[1].pk, 1)
    assert encode_calls == []
    documents[1].refresh_from_db()
    assert (documents[1].status, documents[1].lease_owner) == (Status.PROCESSING, run.owner)


@pytest.fixture
def next_runs(monkeypatch):
    """Record the runs ``ingest_pending`` queues after itself instead of running them inline."""
    requested: list[int] = []
    monkeypatch.setattr("documents.services.request_ingestion", lambda: requested.append(1))
    return requested


def test_a_run_claims_no_more_documents_than_its_budget_and_queues_the_next(alice, queued, settings, next_runs):
    settings.INGEST_BATCH_DOCUMENTS = 3
    documents, _ = queued(alice, small_files(5))
    tasks.ingest_pending()
    statuses = [Document.objects.get(pk=d.pk).status for d in documents]
    assert statuses == [Status.READY] * 3 + [Status.PENDING] * 2
    assert len(next_runs) == 1  # queued once its batch was claimed, for the two left
    tasks.ingest_pending()
    assert all(Document.objects.get(pk=d.pk).status == Status.READY for d in documents)
    assert len(next_runs) == 1  # nothing was left pending for a third run


def test_a_run_stops_claiming_once_its_chunk_budget_is_reached(alice, queued, settings, next_runs):
    settings.INGEST_BATCH_CHUNKS = 1
    documents, _ = queued(alice, small_files(3))
    tasks.ingest_pending()
    assert [Document.objects.get(pk=d.pk).status for d in documents] == [Status.READY, Status.PENDING, Status.PENDING]


def test_uploads_queue_one_run_until_it_starts(alice, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(Conf, "SYNC", False)  # a real queue: tasks wait in OrmQ for a cluster
    with django_capture_on_commit_callbacks(execute=True):
        documents = [upload_document(alice, file_name=name, data=data)[0] for name, data in small_files(4)]
    assert [OrmQ.objects.get().func()] == ["documents.tasks.ingest_pending"]
    assert IngestionRequest.objects.get().wanted

    tasks.ingest_pending()  # the queued run, as a worker would start it: it clears the flag
    assert all(Document.objects.get(pk=d.pk).status == Status.READY for d in documents)
    assert not IngestionRequest.objects.get().wanted
    with django_capture_on_commit_callbacks(execute=True):
        upload_document(alice, file_name="late.txt", data=b"A late note about plot 9 and its tomatoes.")
    assert OrmQ.objects.count() == 2  # an upload after the run started queues a new one


def test_an_unreadable_file_fails_alone_and_its_batch_mates_are_ready(alice, queued, encode_calls):
    files = [small_files(1, "first")[0], ("broken.pdf", b"%PDF-1.7\ngarbage"), small_files(1, "last")[0]]
    (first, broken, last), callbacks = queued(alice, files)
    callbacks[0]()
    broken.refresh_from_db()
    assert (broken.status, broken.error) == (Status.FAILED, "this PDF is damaged and cannot be read")
    assert broken.chunks.count() == 0
    assert_one_complete_set(first)
    assert_one_complete_set(last)
    assert len(encode_calls) == 1


def test_an_embedding_error_on_one_documents_texts_fails_only_that_document(alice, queued, monkeypatch):
    files = [
        *small_files(2, "good"),
        ("poison.txt", b"This poison text breaks the embedding model."),
        *small_files(2, "fine"),
    ]
    documents, callbacks = queued(alice, files)
    real_embed = embeddings.embed_texts
    calls = []

    def breaks_on_poison(texts, batch_size=None):
        calls.append(len(texts))
        if any("poison" in text for text in texts):
            raise RuntimeError("CUDA out of memory (not really)")
        return real_embed(texts, batch_size)

    monkeypatch.setattr(embeddings, "embed_texts", breaks_on_poison)
    callbacks[0]()
    poison = documents[2]
    poison.refresh_from_db()
    assert (poison.status, poison.error) == (Status.FAILED, tasks.UNEXPECTED_FAILURE)
    assert poison.chunks.count() == 0
    for document in documents[:2] + documents[3:]:
        assert_one_complete_set(document)
    assert calls == [5, 1, 1, 1, 1, 1]  # the batch, then each document alone


def test_a_model_that_cannot_load_fails_every_document_with_a_readable_reason(alice, queued, monkeypatch):
    documents, callbacks = queued(alice, small_files(3))

    def unusable(texts, batch_size=None):
        raise embeddings.EmbeddingModelError("cannot load the embedding model from /nowhere")

    monkeypatch.setattr(embeddings, "embed_texts", unusable)
    callbacks[0]()
    for document in documents:
        document.refresh_from_db()
        assert (document.status, document.error) == (Status.FAILED, tasks.EMBEDDING_FAILED)


def test_a_long_document_writes_its_progress_between_encode_calls(alice, queued, settings, monkeypatch):
    settings.EMBEDDING_BATCH_SIZE = 1
    settings.CHUNK_MAX_TOKENS = 48
    # About 46 chunks: three encode calls of 16.
    (document,), callbacks = queued(alice, [("ops.md", f"# Ops\n\n{LONG_PARAGRAPH}\n\n{LONG_PARAGRAPH}".encode())])
    seen = []
    real_embed = embeddings.embed_texts

    def watching(texts, batch_size=None):
        seen.append(Document.objects.values_list("progress_done", "progress_total").get(pk=document.pk))
        return real_embed(texts, batch_size)

    monkeypatch.setattr(embeddings, "embed_texts", watching)
    callbacks[0]()
    chunks = assert_one_complete_set(document)
    assert len(seen) > 2
    assert seen == [(tasks._BATCHES_PER_CALL * i, len(chunks)) for i in range(len(seen))]


@pytest.mark.django_db(transaction=True)
def test_claims_skip_documents_another_worker_is_claiming(alice):
    # Made directly: with committed uploads (transaction=True) their tasks would run at once.
    documents = [make_document(alice, f"note {i}", status=Status.PENDING, chunks=0) for i in range(3)]
    with psycopg.connect(current_database_url()) as other:
        # Another worker is in the middle of claiming the oldest document.
        other.execute("SELECT id FROM documents_document WHERE id = %s FOR UPDATE", [documents[0].pk])
        claimed = tasks._claim_pending(tasks._Run(), 10)
        assert [held.id for held in claimed] == [documents[1].pk, documents[2].pk]
        other.rollback()


def test_a_document_that_lost_a_run_is_processed_alone(alice, queued, encode_calls):
    documents, _ = queued(alice, small_files(3))
    Document.objects.filter(pk=documents[1].pk).update(lease_losses=1)
    tasks.ingest_document(documents[0].pk, 1)
    assert Document.objects.get(pk=documents[1].pk).status == Status.PENDING
    assert len(encode_calls[0]) == 2  # the first and the third

    tasks.ingest_document(documents[1].pk, 1)
    assert len(encode_calls) == 2 and len(encode_calls[1]) == 1
    assert_one_complete_set(documents[1])


def expire(document: Document) -> None:
    Document.objects.filter(pk=document.pk).update(lease_expires=Now() - timedelta(seconds=1))


def test_the_sweep_requeues_a_dead_runs_documents_and_refuses_the_dead_runs_late_writes(
    alice, queued, django_capture_on_commit_callbacks
):
    (document,), _ = queued(alice, small_files(1))
    dead = tasks._Run()
    (held,) = tasks._claim_pending(dead, 10)
    tasks._prepare([held])
    expire(document)
    with django_capture_on_commit_callbacks(execute=False) as requeued:
        assert tasks.sweep_expired_leases() == 1
    document.refresh_from_db()
    assert (document.status, document.ingest_generation, document.lease_losses) == (Status.PENDING, 2, 1)
    assert len(requeued) == 1

    # The dead run was only paused (a network partition): its renewals and writes are refused.
    assert tasks._renew(dead) == 0
    tasks._embed_and_write(dead, [held])
    document.refresh_from_db()
    assert (document.status, document.chunks.count()) == (Status.PENDING, 0)

    requeued[0]()
    assert_one_complete_set(document)
    assert document.ingest_generation == 2


def test_a_document_whose_runs_keep_dying_fails_after_the_attempt_limit(alice, queued, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "max_attempts": 2}
    (document,), _ = queued(alice, small_files(1))
    for _ in range(2):
        tasks._claim_oldest(tasks._Run())
        expire(document)
        tasks.sweep_expired_leases()
    document.refresh_from_db()
    assert document.status == Status.FAILED
    assert document.error == tasks.WORKER_LOST.format(count=2)
    assert (document.lease_owner, document.lease_expires, document.lease_losses) == ("", None, 2)


def test_reindex_resets_the_lease_and_the_count_of_lost_runs(alice, queued, django_capture_on_commit_callbacks):
    from documents import services

    (document,), _ = queued(alice, small_files(1))
    tasks._claim_oldest(tasks._Run())
    expire(document)
    tasks.sweep_expired_leases()
    with django_capture_on_commit_callbacks(execute=True):
        services.reindex_document(Document.objects.get(pk=document.pk))
    assert_one_complete_set(document)
    assert (document.lease_losses, document.ingest_generation) == (0, 3)


def test_ingest_pending_drains_pending_documents_whose_tasks_are_lost(alice, queued, settings):
    settings.INGEST_BATCH_DOCUMENTS = 2
    documents, _ = queued(alice, small_files(5))  # their tasks never run
    tasks.ingest_pending()  # under Q_SYNC each run queues the next at once
    for document in documents:
        assert_one_complete_set(document)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_leases_of_a_live_run(alice):
    document = make_document(alice, "note", status=Status.PENDING, chunks=0)
    run = tasks._Run()
    tasks._claim_pending(run, 1)
    soon = timezone.now() + timedelta(seconds=2)
    Document.objects.filter(pk=document.pk).update(lease_expires=soon)
    with tasks._Heartbeat(run, interval=0.05):
        deadline = time.monotonic() + 10
        while Document.objects.get(pk=document.pk).lease_expires <= soon and time.monotonic() < deadline:
            time.sleep(0.05)
    assert Document.objects.get(pk=document.pk).lease_expires > soon + timedelta(seconds=10)


@pytest.mark.django_db(transaction=True)
def test_the_watch_sweeps_and_queues_a_drain_only_while_its_worker_is_idle(alice, monkeypatch, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    stalled, dead = (make_document(alice, f"note {i}", status=Status.PENDING, chunks=0) for i in range(2))
    Document.objects.filter(pk=dead.pk).update(ingest_generation=1)
    Document.objects.filter(pk=stalled.pk).update(updated=timezone.now() - timedelta(minutes=5))
    tasks._claim_document(tasks._Run(), dead.pk, 1)
    expire(dead)
    drains, requeued = threading.Event(), []
    monkeypatch.setattr(tasks, "_queue_ingest_pending", drains.set)
    monkeypatch.setattr(tasks, "resume_requests", lambda: None)  # tested on its own
    monkeypatch.setattr("documents.services._queue_ingestion", lambda pk, generation: requeued.append((pk, generation)))

    watch = tasks.IngestionWatch(interval=0.05)
    watch.running_tasks = 1  # its worker is busy: sweep, but queue no drain
    watch.start()
    try:
        deadline = time.monotonic() + 10
        while not requeued and time.monotonic() < deadline:
            time.sleep(0.05)
        assert requeued == [(dead.pk, 2)]
        time.sleep(0.3)
        assert not drains.is_set()
        watch.running_tasks = 0
        assert drains.wait(10)
    finally:
        watch.stop()


def test_a_worker_starting_clears_a_stuck_request_and_requests_a_run_for_pending_documents(alice, next_runs):
    # A killed cluster lost its queued run but left the flag set: uploads would queue no other.
    IngestionRequest.objects.create(wanted=True)
    make_document(alice, "note", status=Status.PENDING, chunks=0)
    tasks.resume_requests()
    assert not IngestionRequest.objects.get().wanted
    assert len(next_runs) == 1
    Document.objects.update(status=Status.READY)
    tasks.resume_requests()
    assert len(next_runs) == 1  # nothing pending: nothing requested
