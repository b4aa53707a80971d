"""Prometheus metrics, served on a port of their own, never through the site.

``serve(role)`` starts prometheus-client's exposition server on ``METRICS_HOST:METRICS_PORT``
(0: off) in the process that calls it: the web server (``kb_site.serve``) and the worker
(``manage.py worker``). The port is not the site's, so the public ingress, which routes to the
site's port, never reaches it; Prometheus scrapes the pods directly (docs/operations.md).

Every process that serves metrics reports what the database says at scrape time:

- ``kb_documents{status}``: documents by status (pending, processing, ready, failed);
- ``kb_ingestion_queue_depth``: documents waiting for or in ingestion;
- ``kb_ingestion_oldest_pending_age_seconds``: how long the oldest of them has waited (0: none);
- ``kb_ingestion_chunks_per_second``: recent ingestion throughput (``ingestion_activity``).

A web process adds what it measures itself (the model runs there):

- ``kb_answer_ttft_seconds``, ``kb_answer_tokens_per_second``, ``kb_answer_queue_wait_seconds``:
  histograms over answers the model wrote;
- ``kb_answers_total{outcome}``: answers by how they ended (complete, stopped, failed);
- ``kb_open_sockets``: chat websockets open now;
- ``kb_retrieval_seconds``: histogram of searches (hybrid retrieval, query embedding included).

No label ever holds a user, a document or a question: the series are few and say nothing private.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

ANSWER_TTFT = Histogram(
    "kb_answer_ttft_seconds",
    "Time from the model taking an answer to its first token (prompt reading included, queueing not).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
ANSWER_TOKENS_PER_SECOND = Histogram(
    "kb_answer_tokens_per_second",
    "Decoding speed of an answer after its first token.",
    buckets=(5, 10, 20, 40, 60, 80, 100, 150, 200),
)
ANSWER_QUEUE_WAIT = Histogram(
    "kb_answer_queue_wait_seconds",
    "Time an answer waited in line for the model.",
    buckets=(0, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)
ANSWERS = Counter("kb_answers", "Answers by how they ended.", ["outcome"])
PROMPT_TOKENS = Counter(
    "kb_answer_prompt_tokens",
    "Prompt tokens of answers, by whether the model's cache held them (a follow-up's earlier turns).",
    ["cached"],
)
OPEN_SOCKETS = Gauge("kb_open_sockets", "Chat websockets open now.")
RETRIEVAL = Histogram(
    "kb_retrieval_seconds",
    "Time of one search (hybrid retrieval, the query embedding included).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def record_answer(outcome: str, stats, queue_ms: int | None = None) -> None:
    """Count an answer that ended as ``outcome`` and observe its ``GenerationStats`` timings and
    its wait in line (``queue_ms``)."""
    ANSWERS.labels(outcome=outcome).inc()
    if stats is None or stats.ttft_ms is None:
        return  # the model never produced a token (not-found answer, failure before it)
    ANSWER_TTFT.observe(stats.ttft_ms / 1000)
    ANSWER_QUEUE_WAIT.observe((queue_ms or 0) / 1000)
    if stats.tokens_per_s:
        ANSWER_TOKENS_PER_SECOND.observe(stats.tokens_per_s)
    if stats.prompt_tokens and stats.cached_tokens is not None:
        PROMPT_TOKENS.labels(cached="true").inc(stats.cached_tokens)
        PROMPT_TOKENS.labels(cached="false").inc(stats.prompt_tokens - stats.cached_tokens)


class DatabaseCollector:
    """The ingestion figures above, read from the database at each scrape (one query)."""

    def describe(self):
        # What it collects, without asking the database (registered before Django is set up).
        yield GaugeMetricFamily("kb_documents", "Documents by ingestion status.", labels=["status"])
        for name in (
            "kb_ingestion_queue_depth",
            "kb_ingestion_oldest_pending_age_seconds",
            "kb_ingestion_chunks_per_second",
        ):
            yield GaugeMetricFamily(name, name)

    def collect(self):
        from django.db import connection

        from documents.models import Document, Status

        try:
            activity = Document.objects.ingestion_activity()
        except Exception:
            log.exception("metrics: the database could not be read")
            return
        finally:
            connection.close()  # the exposition server's threads are not request threads
        documents = GaugeMetricFamily("kb_documents", "Documents by ingestion status.", labels=["status"])
        for status in Status:
            documents.add_metric([status.value], getattr(activity, status.value))
        yield documents
        yield GaugeMetricFamily(
            "kb_ingestion_queue_depth",
            "Documents waiting for or in ingestion.",
            value=activity.queued,
        )
        yield GaugeMetricFamily(
            "kb_ingestion_oldest_pending_age_seconds",
            "How long the document waiting longest for ingestion has waited (0: none waits).",
            value=activity.oldest_pending_seconds,
        )
        yield GaugeMetricFamily(
            "kb_ingestion_chunks_per_second",
            "Chunks of recently ingested documents per second.",
            value=activity.chunks_per_second,
        )


_served = False
_lock = threading.Lock()


def serve(role: str) -> int | None:
    """Start this process's exposition server (once); its port, or None when ``METRICS_PORT`` is
    0 or the port is taken (logged as an error: the site itself keeps running)."""
    global _served
    from django.conf import settings

    port = settings.METRICS_PORT
    if not port:
        return None
    with _lock:
        if not _served:
            try:
                start_http_server(port, addr=settings.METRICS_HOST)
            except OSError as exc:
                log.error("%s metrics not served: %s:%s cannot be bound (%s)", role, settings.METRICS_HOST, port, exc)
                return None
            REGISTRY.register(DatabaseCollector())
            _served = True
            log.info("%s metrics on http://%s:%s/metrics", role, settings.METRICS_HOST, port)
    return port
