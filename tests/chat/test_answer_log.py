"""Structured logs: one line per HTTP request and per answer, with their fields for
``LOG_FORMAT=json``, and no question text in either unless ``LOG_CONTENT`` allows it."""

from __future__ import annotations

import json
import logging

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from pythonjsonlogger.json import JsonFormatter

from chat import answering, llm, services

QUESTION = "How often must the Zorblax 3000 be descaled?"


def as_json(record: logging.LogRecord) -> dict:
    """The line ``LOG_FORMAT=json`` writes for ``record`` (the formatter kb_site.settings configures)."""
    config = django_settings.LOGGING["formatters"]["json"]
    return json.loads(JsonFormatter(config["format"], rename_fields=config["rename_fields"]).format(record))


@pytest.mark.parametrize("content", [False, True])
def test_each_request_is_one_line_without_its_query_string_unless_content_may_be_logged(
    client, alice, settings, caplog, content
):
    settings.LOG_CONTENT = content
    client.force_login(alice)
    with caplog.at_level(logging.INFO, logger="kb.request"):
        client.get("/api/v1/search", {"q": "the secret question"})

    [record] = [r for r in caplog.records if r.name == "kb.request"]
    line = as_json(record)
    assert line["event"] == "request" and line["method"] == "GET" and line["status"] == 200
    assert line["user_id"] == alice.pk and line["duration_ms"] >= 0
    assert line["level"] == "INFO" and line["logger"] == "kb.request" and "time" in line
    assert ("secret" in json.dumps(line)) is content
    assert line["path"] == ("/api/v1/search?q=the+secret+question" if content else "/api/v1/search")


def test_health_probes_are_not_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="kb.request"):
        client.get("/healthz")
    assert not [r for r in caplog.records if r.name == "kb.request"]


@pytest.mark.django_db(transaction=True)  # the answer reads the database from other threads
async def test_an_answer_is_one_line_with_its_outcome_and_timings_but_not_its_text(alice, zorblax_manual, caplog):
    conversation = await database_sync_to_async(services.create_conversation)(alice)
    question = await database_sync_to_async(services.append_user_message)(conversation, QUESTION)

    async def emit(event):
        pass

    with caplog.at_level(logging.INFO, logger="chat.answering"):
        message = await answering.answer(
            question, llm.GenerationParams(mode="greedy", max_tokens=24), user=alice, emit=emit
        )

    [record] = [r for r in caplog.records if getattr(r, "event", None) == "answer"]
    line = as_json(record)
    assert line["outcome"] == "complete" and line["conversation"] == str(conversation.public_id)
    assert line["sources"] >= 1 and line["completion_tokens"] >= 1 and line["ttft_ms"] >= 0
    assert line["model"] and line["queue_ms"] >= 0 and line["finish_reason"] in ("stop", "length", "loop")
    assert "descaled" not in json.dumps(line) and message.content[:20] not in json.dumps(line)
