"""The deployment's shape on loopback: two daphne web processes and one qcluster worker
against the same Postgres, as web and worker pods share one database on Kubernetes.

Nothing but Postgres holds state, so a document uploaded through web process A is ingested
by the worker and is then searchable and chat-able through web process B; and a worker
killed in the middle of an ingestion is replaced by a new one that finishes it with exactly
one set of chunks.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from django.contrib.auth.models import User

from accounts.services import create_api_token
from documents.models import Chunk, Document, Status
from tests.live import (
    WebServer,
    Worker,
    ask,
    child_env,
    document_of,
    long_document,
    upload,
    wait_until_partly_embedded,
    wait_until_settled,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GUIDE = (
    "# Greenhouse guide\n\n"
    "## Watering\n\n"
    "Water the tomato seedlings every morning with exactly 300 millilitres each. "
    "The greenhouse sprinkler code is TOMATO-4471.\n\n"
    "## Heating\n\n"
    "Keep the greenhouse above twelve degrees Celsius at night in spring.\n"
)


@pytest.fixture
def alice_live(db):
    user = User.objects.create_user("alice", password="pw-alice-live")
    return user, create_api_token(user)


@pytest.fixture
def cluster(tmp_path):
    """Web A, web B and a worker; all stopped after the test, whatever happens."""
    # Encode calls of 8 × 16 chunks: the long document below shows progress between calls.
    env = child_env(LLM_MAX_TOKENS="48", LLM_CONTEXT="2048", Q_TIMEOUT="40", Q_RETRY="45", EMBEDDING_BATCH_SIZE="8")
    processes = []
    try:
        web_a = WebServer(env, tmp_path, "web-a")
        processes.append(web_a)
        web_b = WebServer(env, tmp_path, "web-b")
        processes.append(web_b)
        worker = Worker(env, tmp_path, "worker-1")
        processes.append(worker)
        yield {"a": web_a, "b": web_b, "worker": worker, "env": env, "tmp": tmp_path, "processes": processes}
    finally:
        for process in processes:
            process.stop()


def test_upload_through_one_web_process_is_searchable_and_chatable_through_another(cluster, alice_live):
    _, token = alice_live
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=cluster["a"].url, headers=headers, timeout=30) as api_a,
        httpx.Client(base_url=cluster["b"].url, headers=headers, timeout=30) as api_b,
    ):
        doc_id = upload(api_a, "greenhouse.md", GUIDE.encode())

        ready = wait_until_settled(
            api_b, doc_id, timeout=120, message=f"the worker to ingest the document\n{cluster['worker'].log()}"
        )
        assert ready["status"] == "ready", ready["error"]
        assert ready["chunk_count"] >= 1

        found = api_b.get("/api/v1/search", params={"q": "What is the sprinkler code?", "k": 3}).json()["results"]
        assert found and "TOMATO-4471" in found[0]["text"]
        assert found[0]["location"].startswith("Greenhouse guide")

        conversation = api_b.post("/api/v1/conversations/").json()["id"]
    events = asyncio.run(ask(cluster["b"].url, conversation, token, "How much water do the tomato seedlings get?"))
    kinds = [e["type"] for e in events]
    assert "error" not in kinds, events
    sources = next(e for e in events if e["type"] == "sources")["sources"]
    assert sources[0]["document"] == doc_id
    answer = "".join(e["text"] for e in events if e["type"] == "token")
    assert answer.strip()
    assert kinds[-1] == "done"

    with httpx.Client(base_url=cluster["a"].url, headers=headers, timeout=30) as api_a:
        saved = api_a.get(f"/api/v1/conversations/{conversation}/").json()
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    # The saved answer is the checked one (a supported sentence may have gained its [n]).
    assert saved["messages"][1]["content"] == events[-1]["content"]
    assert saved["messages"][1]["grounding"] == events[-1]["grounding"]


def test_a_worker_killed_mid_ingestion_is_replaced_and_the_document_ends_with_one_chunk_set(cluster, alice_live):
    _, token = alice_live
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=cluster["a"].url, headers=headers, timeout=30) as api:
        doc_id = upload(api, "notes.md", long_document(400))

        # Kill the worker once it has embedded some, but not all, of the chunks.
        wait_until_partly_embedded(api, doc_id, timeout=120, message=f"ingestion to start\n{cluster['worker'].log()}")
        cluster["worker"].kill()
        killed_at = document_of(api, doc_id)
        assert killed_at["status"] == "processing"
        assert killed_at["progress_done"] < killed_at["progress_total"]
        assert Chunk.objects.filter(document__public_id=doc_id).count() == 0

        replacement = Worker(cluster["env"], cluster["tmp"], "worker-2")
        cluster["processes"].append(replacement)
        done = wait_until_settled(
            api, doc_id, timeout=240, message=f"the new worker to finish the document\n{replacement.log()}"
        )
    assert done["status"] == "ready", done["error"]
    document = Document.objects.get(public_id=doc_id)
    ordinals = list(document.chunks.order_by("ordinal").values_list("ordinal", flat=True))
    assert ordinals == list(range(len(ordinals)))
    assert len(ordinals) == document.progress_total == done["chunk_count"]
    assert document.status == Status.READY
