"""Prometheus metrics (kb_site/metrics.py): what the database says at scrape time, what an answer
records, and — with a real web server and worker on loopback — /metrics on each process's own
port after an upload and an answer, and never on the site's port."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from accounts.services import create_api_token
from chat.models import GenerationStats
from documents.models import Document, Status
from kb_site import metrics
from tests.deploy.test_multiprocess import GUIDE
from tests.live import WebServer, Worker, ask, child_env, free_port, upload, wait_until_settled


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of an exposition text."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def make_document(owner, status: str) -> Document:
    n = Document.objects.count()
    return Document.objects.create(
        owner=owner,
        title=f"Document {n}",
        original_name=f"document-{n}.txt",
        mime_type="text/plain",
        size=10,
        sha256=f"{n:064d}",
        status=status,
        lease_expires=timezone.now() + timedelta(minutes=1) if status == Status.PROCESSING else None,
    )


@pytest.mark.django_db
def test_the_database_figures_count_documents_by_status_and_the_oldest_waiting_one(django_user_model):
    owner = django_user_model.objects.create_user("owner")
    for status in (Status.PENDING, Status.PENDING, Status.PROCESSING, Status.READY, Status.FAILED):
        make_document(owner, status)
    Document.objects.filter(pk=Document.objects.filter(status=Status.PENDING).first().pk).update(
        updated=timezone.now() - timedelta(minutes=12)
    )
    registry = CollectorRegistry()
    registry.register(metrics.DatabaseCollector())
    found = samples(generate_latest(registry).decode())

    assert found[("kb_documents", (("status", "pending"),))] == 2
    assert found[("kb_documents", (("status", "processing"),))] == 1
    assert found[("kb_documents", (("status", "ready"),))] == 1
    assert found[("kb_documents", (("status", "failed"),))] == 1
    assert found[("kb_ingestion_queue_depth", ())] == 3
    assert 12 * 60 <= found[("kb_ingestion_oldest_pending_age_seconds", ())] < 13 * 60
    assert found[("kb_ingestion_chunks_per_second", ())] == 0


def test_an_answer_is_counted_by_outcome_and_its_timings_observed():
    def value(name: str, **labels) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    before = (value("kb_answers_total", outcome="complete"), value("kb_answer_ttft_seconds_count"))
    tokens = [value("kb_answer_prompt_tokens_total", cached=cached) for cached in ("true", "false")]
    stats = GenerationStats(model="m", prompt_tokens=500, cached_tokens=420, ttft_ms=250, tokens_per_s=90.0)
    metrics.record_answer("complete", stats)
    metrics.record_answer("failed", None)  # no model timings: counted only

    assert value("kb_answers_total", outcome="complete") == before[0] + 1
    assert value("kb_answer_ttft_seconds_count") == before[1] + 1
    assert value("kb_answers_total", outcome="failed") >= 1
    assert value("kb_answer_prompt_tokens_total", cached="true") == tokens[0] + 420
    assert value("kb_answer_prompt_tokens_total", cached="false") == tokens[1] + 80


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_live_web_server_and_worker_serve_metrics_on_their_own_ports(tmp_path):
    user = User.objects.create_user("metrics-reader")
    token = create_api_token(user)
    web_port, worker_port = free_port(), free_port()
    env = child_env(LLM_MAX_TOKENS="24", LLM_CONTEXT="2048")
    web = WebServer({**env, "METRICS_PORT": str(web_port)}, tmp_path, "web")
    worker = Worker({**env, "METRICS_PORT": str(worker_port)}, tmp_path, "worker")
    try:
        web.wait_ready()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=web.url, headers=headers, timeout=30) as api:
            doc_id = upload(api, "greenhouse.md", GUIDE.encode())
            ready = wait_until_settled(
                api, doc_id, timeout=120, message=f"the worker to ingest the document\n{worker.log()}"
            )
            assert ready["status"] == "ready", ready["error"]
            conversation = api.post("/api/v1/conversations/").json()["id"]
            assert api.get("/metrics").status_code == 404  # not on the site's port
        events = asyncio.run(ask(web.url, conversation, token, "How much water do the tomato seedlings get?"))
        assert events[-1]["type"] == "done", events[-1]

        # The image's worker check finds `manage.py worker` (deploy/healthcheck.py).
        health = subprocess.run([sys.executable, "deploy/healthcheck.py", "worker"], capture_output=True, text=True)
        assert health.returncode == 0, health.stdout + health.stderr
        web_metrics = samples(httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=10).text)
        worker_metrics = samples(httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10).text)
    finally:
        web.stop()
        worker.stop()

    for found in (web_metrics, worker_metrics):
        assert found[("kb_documents", (("status", "ready"),))] == 1
        assert found[("kb_ingestion_queue_depth", ())] == 0
    assert web_metrics[("kb_answers_total", (("outcome", "complete"),))] == 1
    assert web_metrics[("kb_answer_ttft_seconds_count", ())] == 1
    assert web_metrics[("kb_answer_queue_wait_seconds_count", ())] == 1
    assert web_metrics[("kb_retrieval_seconds_count", ())] == 1
    assert web_metrics[("kb_open_sockets", ())] == 0  # the socket closed after its answer


def test_a_taken_metrics_port_is_logged_and_the_process_runs_on(settings, caplog, monkeypatch):
    monkeypatch.setattr(metrics, "_served", False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.METRICS_HOST, settings.METRICS_PORT = "127.0.0.1", taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="kb_site.metrics"):
            assert metrics.serve("web") is None
    assert "web metrics not served" in caplog.text and "cannot be bound" in caplog.text
    assert metrics._served is False
