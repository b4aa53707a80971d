"""A real ``manage.py qcluster`` SIGKILLed in the middle of an ingestion: a new worker picks
the document up through its expired lease, long before django-q2 would hand the task out again
(``Q_RETRY``, kept at its 31-minute default here), and the document ends ready with one chunk
set, from a new generation."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django_q.conf import Conf

from documents.models import Document, Status
from documents.services import upload_document
from tests.live import Worker, child_env, long_document, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _state(pk: int) -> dict:
    return Document.objects.values(
        "status", "progress_done", "progress_total", "ingest_generation", "lease_losses", "lease_owner", "error"
    ).get(pk=pk)


def test_a_sigkilled_worker_s_document_is_ready_again_through_its_lease(tmp_path, monkeypatch):
    # Queue the task on the ORM broker for the worker, not in this process (tests set Q_SYNC).
    monkeypatch.setattr(Conf, "SYNC", False)
    owner = User.objects.create_user("alice-live")
    # Small encode calls, so the worker is killed between them with part of the work done.
    env = child_env(INGEST_LEASE_SECONDS="9", EMBEDDING_BATCH_SIZE="2", Q_TIMEOUT="600", Q_RETRY="1860")
    first = Worker(env, tmp_path, "worker-1")
    second = None
    try:
        with transaction.atomic():
            document, _ = upload_document(owner, file_name="notes.md", data=long_document(300))
        wait_for(
            lambda: (s := _state(document.pk))["status"] == "processing" and s["progress_done"] > 0,
            timeout=180,
            interval=0.1,
            message=f"the worker to start embedding\n{first.log()}",
        )
        first.kill()
        killed = _state(document.pk)
        assert killed["status"] == Status.PROCESSING
        assert 0 < killed["progress_done"] < killed["progress_total"]
        assert killed["lease_owner"]
        assert document.chunks.count() == 0

        second = Worker(env, tmp_path, "worker-2")
        done = wait_for(
            lambda: (s := _state(document.pk))["status"] in (Status.READY, Status.FAILED) and s,
            timeout=240,
            message=f"the new worker to recover the document\n{second.log()}",
        )
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert done["status"] == Status.READY, done["error"]
    assert (done["ingest_generation"], done["lease_losses"], done["lease_owner"]) == (2, 1, "")
    ordinals = list(document.chunks.order_by("ordinal").values_list("ordinal", flat=True))
    assert ordinals == list(range(done["progress_total"]))
