"""The ingestion figure on the documents page and in the list API: how many of the documents
the reader can see are ready, how many are queued, and the recent throughput in chunks/s."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from documents.models import Document, Status, Visibility
from tests.documents.web_helpers import API, bearer, make_document

pytestmark = pytest.mark.django_db


def finished(document: Document, *, chunks: int, ago: float, took: float) -> None:
    """Mark ``document`` ready ``ago`` seconds ago with ``chunks`` chunks, claimed ``took`` seconds before that."""
    now = timezone.now()
    Document.objects.filter(pk=document.pk).update(
        status=Status.READY,
        progress_done=chunks,
        progress_total=chunks,
        ingested=now - timedelta(seconds=ago),
        ingest_started=now - timedelta(seconds=ago + took),
    )


@pytest.fixture
def batch(alice, bob):
    """Alice's batch under way: 2 ready recently, 1 ready long ago, 1 failed, 2 pending, 1
    processing; plus bob's private documents, which she must not count."""
    recent = [make_document(alice, f"recent {i}", status=Status.PENDING, chunks=0) for i in range(2)]
    finished(recent[0], chunks=30, ago=20, took=20)  # claimed 40 s ago
    finished(recent[1], chunks=50, ago=5, took=10)
    old = make_document(alice, "old", status=Status.PENDING, chunks=0)
    finished(old, chunks=900, ago=600, took=60)
    make_document(alice, "scan", status=Status.FAILED, chunks=0)
    for i in range(2):
        make_document(alice, f"waiting {i}", status=Status.PENDING, chunks=0)
    make_document(alice, "working", status=Status.PROCESSING, chunks=0)
    for i in range(3):
        make_document(bob, f"bobs {i}", status=Status.PENDING, chunks=0)
    make_document(bob, "bobs shared", visibility=Visibility.SHARED)


def test_activity_counts_what_the_reader_sees_and_measures_chunks_per_second(alice, batch):
    activity = Document.objects.visible_to(alice).ingestion_activity()
    assert (activity.total, activity.ready, activity.pending, activity.processing, activity.failed) == (8, 4, 2, 1, 1)
    assert activity.queued == 3
    # 80 chunks became ready in the last minute; the earliest of them was claimed 40 s ago.
    assert activity.chunks_per_second == pytest.approx(80 / 40, rel=0.02)
    assert activity.summary() == "4 of 8 ready, 3 in the queue, 2.0 chunks/s, 1 failed"


def test_throughput_is_averaged_over_the_last_minute_when_work_began_earlier(alice):
    document = make_document(alice, "steady", status=Status.PENDING, chunks=0)
    finished(document, chunks=1200, ago=1, took=300)
    make_document(alice, "next", status=Status.PENDING, chunks=0)
    activity = Document.objects.visible_to(alice).ingestion_activity()
    assert activity.chunks_per_second == pytest.approx(20, rel=0.02)
    assert activity.summary() == "1 of 2 ready, 1 in the queue, 20 chunks/s"


def test_nothing_ready_lately_means_no_throughput(alice):
    make_document(alice, "done long ago")
    make_document(alice, "waiting", status=Status.PENDING, chunks=0)
    activity = Document.objects.visible_to(alice).ingestion_activity()
    assert activity.chunks_per_second == 0
    assert activity.summary() == "1 of 2 ready, 1 in the queue"


def test_the_documents_page_shows_the_figure_and_polls_it_while_documents_are_queued(alice, alice_client, batch):
    html = alice_client.get(reverse("documents:list")).content.decode()
    assert "4 of 8 ready, 3 in the queue, 2.0 chunks/s, 1 failed" in html
    assert f'hx-get="{reverse("documents:activity")}"' in html

    partial = alice_client.get(reverse("documents:activity")).content.decode()
    assert "4 of 8 ready, 3 in the queue" in partial
    assert 'hx-trigger="every 2s"' in partial

    Document.objects.filter(status__in=[Status.PENDING, Status.PROCESSING]).update(
        status=Status.READY, lease_expires=None
    )
    partial = alice_client.get(reverse("documents:activity")).content.decode()
    assert "hx-trigger" not in partial
    assert "in the queue" not in partial


def test_the_figure_is_hidden_when_nothing_is_queued(alice, alice_client):
    make_document(alice, "done")
    html = alice_client.get(reverse("documents:list")).content.decode()
    assert "in the queue" not in html
    assert reverse("documents:activity") not in html


def test_the_activity_figure_needs_a_sign_in(client):
    response = client.get(reverse("documents:activity"))
    assert response.status_code == 302


def test_the_list_api_reports_the_ingestion_figure(alice, alice_token, client, batch):
    body = client.get(API, **bearer(alice_token)).json()
    assert body["ingestion"] == {
        "total": 8,
        "ready": 4,
        "pending": 2,
        "processing": 1,
        "failed": 1,
        "queued": 3,
        "chunks_per_second": 2.0,
        "summary": "4 of 8 ready, 3 in the queue, 2.0 chunks/s, 1 failed",
    }


def test_the_activity_figure_costs_one_query_whatever_the_number_of_documents(
    alice, alice_client, django_assert_num_queries, batch
):
    # Session, user, her permissions (visible_to asks for read_all_documents: user and group
    # permissions), and the one aggregate.
    with django_assert_num_queries(5):
        alice_client.get(reverse("documents:activity"))
    for i in range(20):
        make_document(alice, f"more {i}", status=Status.PENDING, chunks=0)
    with django_assert_num_queries(5):
        response = alice_client.get(reverse("documents:activity"))
    assert "4 of 28 ready, 23 in the queue" in response.content.decode()
