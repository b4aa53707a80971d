"""Conversation search reads only the searcher's own messages, and its text is capped.

Bob has thousands of messages that all contain the word alice searches for; her search must
not read one of them (the plan Postgres runs is checked, not just the SQL), and the page and
the API refuse a search text over ``SEARCH_MAX_CHARS`` with a clear message.
"""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import SEARCH_MAX_CHARS, Conversation, Message, Role, SearchTooLong
from tests.documents.web_helpers import bearer

pytestmark = pytest.mark.django_db

LIST = "/api/v1/conversations/"


def make_history(user, conversations: int, messages_each: int, word: str) -> None:
    made = Conversation.objects.bulk_create(
        Conversation(user=user, title=f"{user.username} chat {i}") for i in range(conversations)
    )
    Message.objects.bulk_create(
        Message(conversation=c, role=Role.USER, content=f"Question {n} about the {word} in {c.title}.")
        for c in made
        for n in range(messages_each)
    )


@pytest.fixture
def histories(alice, bob):
    """Alice: 3 conversations of 10 messages, one mentioning "greenhouse". Bob: 200
    conversations of 25 messages, every one mentioning it."""
    make_history(alice, 3, 10, "weather")
    found = Conversation.objects.create(user=alice, title="Plants")
    Message.objects.create(conversation=found, role=Role.USER, content="Is the GREENHOUSE warm enough?")
    make_history(bob, 200, 25, "greenhouse")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_conversation, chat_message")
    return found


def message_rows_read(queryset) -> tuple[int, list[str]]:
    """Rows of chat_message that Postgres reads running ``queryset`` (kept and filtered out),
    from EXPLAIN ANALYZE, and the plan's node types, for the failure message."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    rows, nodes, stack = 0, [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(f"{node['Node Type']} {node.get('Relation Name', '')}".strip())
        if node.get("Relation Name") == "chat_message" or node.get("Index Name", "").startswith("message_"):
            loops = node.get("Actual Loops", 1)
            rows += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
        stack.extend(node.get("Plans", []))
    return rows, nodes


def test_alices_search_reads_only_her_own_messages(alice, histories):
    searched = Conversation.objects.for_user(alice).search("greenhouse")
    assert list(searched) == [histories]
    rows, nodes = message_rows_read(searched)
    # About her 31 (EXPLAIN rounds rows per loop); bob's 5,000 all contain the word.
    assert rows < 100, nodes


def test_the_message_scan_is_limited_to_the_users_conversations_in_sql(alice, histories):
    with CaptureQueriesContext(connection) as queries:
        list(Conversation.objects.for_user(alice).search("greenhouse"))
    (query,) = queries.captured_queries
    # The messages read are those whose conversation is one of hers.
    messages = query["sql"][query["sql"].index('FROM "chat_message"') :]
    hers = (
        r'"conversation_id" IN \(SELECT \w+\."id" AS "pk" FROM "chat_conversation" \w+ '
        rf'WHERE \w+\."user_id" = {alice.pk}\)'
    )
    assert re.search(hers, messages), messages


def test_search_matches_titles_and_messages_case_insensitively(alice, histories):
    assert list(Conversation.objects.for_user(alice).search("plants")) == [histories]
    assert list(Conversation.objects.for_user(alice).search("  Greenhouse ")) == [histories]
    assert Conversation.objects.for_user(alice).search("").count() == 4


def test_a_search_text_over_the_cap_is_refused():
    with pytest.raises(SearchTooLong, match="at most 200 characters; that search has 201"):
        Conversation.objects.none().search("x" * (SEARCH_MAX_CHARS + 1))
    Conversation.objects.none().search("x" * SEARCH_MAX_CHARS)  # the cap itself is fine


def test_the_api_answers_400_to_a_search_over_the_cap(alice, alice_token, histories):
    response = Client().get(LIST, {"q": "g" * 201}, **bearer(alice_token))
    assert response.status_code == 400
    assert response.json() == {"error": "Search for at most 200 characters; that search has 201."}
    response = Client().get(LIST, {"q": "greenhouse"}, **bearer(alice_token))
    assert [c["title"] for c in response.json()["conversations"]] == ["Plants"]


def test_the_page_says_the_search_is_too_long_and_lists_every_conversation(alice_client, histories):
    response = alice_client.get(reverse("chat:home"), {"q": "g" * 5000})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Search for at most 200 characters; that search has 5,000." in html
    assert len(response.context["conversations"]) == 4
    assert response.context["q"] == ""
