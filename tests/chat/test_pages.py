"""The chat pages: conversation list, search, rename, delete, settings, export, feedback."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import services
from chat.models import Citation, Conversation, Feedback, Message, MessageStatus
from tests.chat.factories import answers, make_cited_document, make_conversation, make_passage

pytestmark = pytest.mark.django_db

PASSAGE = make_passage("Zorblax 3000 manual", "Descaling", "The Zorblax 3000 must be descaled every 40 days.", 0.0312)


@pytest.fixture
def descaling(alice) -> Conversation:
    make_cited_document(alice, PASSAGE)
    return make_conversation(
        alice,
        exchanges=[("How often do I descale the Zorblax?", "Every 40 days [1].")],
        sources=[PASSAGE],
    )


def page(conversation: Conversation) -> str:
    return reverse("chat:conversation", args=[conversation.public_id])


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("chat:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_home_lists_only_my_conversations(alice_client, descaling, bob):
    make_conversation(bob, title="Bob's secret plans")
    response = alice_client.get(reverse("chat:home"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "How often do I descale the Zorblax?" in body  # the first question became the title
    assert "Bob&#x27;s secret plans" not in body and "secret plans" not in body


def test_home_runs_a_fixed_number_of_queries_however_many_conversations(alice_client, alice):
    for i in range(3):
        make_conversation(alice, title=f"Topic {i}")
    with CaptureQueriesContext(connection) as few:
        alice_client.get(reverse("chat:home"))
    for i in range(3, 15):
        make_conversation(alice, title=f"Topic {i}")
    with CaptureQueriesContext(connection) as many:
        response = alice_client.get(reverse("chat:home"))
    assert "Topic 14" in response.content.decode()
    assert len(many) == len(few)


def test_search_finds_conversations_by_title_and_by_message_content(alice_client, alice, descaling):
    make_conversation(alice, title="Holiday planning", exchanges=[("Where to go?", "Try the mountains.")])
    make_conversation(alice, title="Unrelated")

    by_title = alice_client.get(reverse("chat:home"), {"q": "holiday"}).content.decode()
    assert "Holiday planning" in by_title and "Unrelated" not in by_title and "descale" not in by_title

    by_content = alice_client.get(reverse("chat:home"), {"q": "MOUNTAINS"}).content.decode()
    assert "Holiday planning" in by_content and "Unrelated" not in by_content

    nothing = alice_client.get(reverse("chat:home"), {"q": "zeppelin"}).content.decode()
    assert "No conversation matches" in nothing


def test_search_never_finds_other_users_conversations(alice_client, bob):
    make_conversation(bob, title="Zeppelin routes")
    body = alice_client.get(reverse("chat:home"), {"q": "zeppelin"}).content.decode()
    assert "Zeppelin routes" not in body


def test_new_conversation_opens_its_page_and_carries_the_first_question(alice_client, alice):
    response = alice_client.post(reverse("chat:new"), {"question": "What is the warranty?"})
    conversation = Conversation.objects.get(user=alice)
    assert response.status_code == 302
    assert response["Location"] == page(conversation)
    body = alice_client.get(page(conversation)).content.decode()
    # The question is handed to chat.js (which asks it over the socket) exactly once.
    assert '"pendingQuestion": "What is the warranty?"' in body
    again = alice_client.get(page(conversation)).content.decode()
    assert '"pendingQuestion": ""' in again


def test_conversation_page_shows_messages_citations_and_the_socket(alice_client, descaling):
    response = alice_client.get(page(descaling))
    body = response.content.decode()
    assert response.status_code == 200
    assert "How often do I descale the Zorblax?" in body
    assert "Every 40 days [1]." in body
    assert "Zorblax 3000 manual" in body and "every 40 days." in body  # the cited passage
    assert f"/ws/chat/{descaling.public_id}/" in body
    assert "/static/kb/chat." in body


def test_model_and_document_text_is_escaped_in_the_page(alice_client, alice):
    evil = SimpleNamespace(**{**PASSAGE.__dict__, "text": "<img src=x onerror=alert(2)>"})
    make_cited_document(alice, evil)
    conversation = make_conversation(
        alice, exchanges=[("<script>alert(0)</script>", "<b onmouseover=alert(1)>hi</b>")], sources=[evil]
    )
    body = alice_client.get(page(conversation)).content.decode()
    assert "<script>alert(0)" not in body
    assert "<b onmouseover" not in body
    assert "<img src=x" not in body
    assert "&lt;b onmouseover=alert(1)&gt;" in body


def test_other_users_conversation_pages_are_404(bob_client, descaling):
    answer = answers(descaling)[0]
    public_id = descaling.public_id
    assert bob_client.get(page(descaling)).status_code == 404
    assert bob_client.get(reverse("chat:export_md", args=[public_id])).status_code == 404
    assert bob_client.get(reverse("chat:export_json", args=[public_id])).status_code == 404
    assert bob_client.post(reverse("chat:rename", args=[public_id]), {"title": "Mine"}).status_code == 404
    assert bob_client.post(reverse("chat:delete", args=[public_id])).status_code == 404
    settings_url = reverse("chat:settings", args=[public_id])
    assert bob_client.post(settings_url, "{}", content_type="application/json").status_code == 404
    feedback_url = reverse("chat:feedback", args=[answer.public_id])
    assert bob_client.post(feedback_url, {"value": "down"}).status_code == 404
    descaling.refresh_from_db()
    answer.refresh_from_db()
    assert descaling.title == "How often do I descale the Zorblax?"
    assert answer.feedback == Feedback.NONE


def test_rename_changes_the_title(alice_client, descaling):
    response = alice_client.post(reverse("chat:rename", args=[descaling.public_id]), {"title": "  Descaling  "})
    assert response.status_code == 302
    descaling.refresh_from_db()
    assert descaling.title == "Descaling"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_rename_refuses_empty_or_overlong_titles(alice_client, descaling, title):
    response = alice_client.post(reverse("chat:rename", args=[descaling.public_id]), {"title": title}, follow=True)
    assert "Title:" in response.content.decode()
    descaling.refresh_from_db()
    assert descaling.title == "How often do I descale the Zorblax?"


def test_delete_removes_the_conversation_and_its_messages(alice_client, descaling):
    response = alice_client.post(reverse("chat:delete", args=[descaling.public_id]))
    assert response.status_code == 302 and response["Location"] == reverse("chat:home")
    assert not Conversation.objects.filter(pk=descaling.pk).exists()
    assert alice_client.get(page(descaling)).status_code == 404


def test_delete_needs_post(alice_client, descaling):
    assert alice_client.get(reverse("chat:delete", args=[descaling.public_id])).status_code == 405
    assert Conversation.objects.filter(pk=descaling.pk).exists()


def test_markdown_export_has_questions_answers_and_sources(alice_client, descaling):
    response = alice_client.get(reverse("chat:export_md", args=[descaling.public_id]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert 'filename="how-often-do-i-descale-the-zorblax.md"' in response["Content-Disposition"]
    text = response.content.decode()
    assert text.startswith("# How often do I descale the Zorblax?")
    assert "## Question\n\nHow often do I descale the Zorblax?" in text
    assert "## Answer\n\nEvery 40 days [1]." in text
    assert "1. **Zorblax 3000 manual** — Descaling" in text
    assert "> The Zorblax 3000 must be descaled every 40 days." in text


def test_markdown_export_marks_stopped_answers(alice_client, alice):
    conversation = make_conversation(alice, title="Partial")
    services.append_user_message(conversation, "Tell me everything")
    services.save_assistant_message(conversation, content="Well, first", status=MessageStatus.STOPPED)
    text = alice_client.get(reverse("chat:export_md", args=[conversation.public_id])).content.decode()
    assert "## Answer (stopped)\n\nWell, first" in text


def test_json_export_has_messages_citations_stats_and_feedback(alice_client, descaling):
    services.set_feedback(answers(descaling)[0], "up", "spot on")
    response = alice_client.get(reverse("chat:export_json", args=[descaling.public_id]))
    assert response["Content-Type"].startswith("application/json")
    data = json.loads(response.content)
    assert data["id"] == str(descaling.public_id)
    question, answer = data["messages"]
    assert (question["role"], question["content"]) == ("user", "How often do I descale the Zorblax?")
    assert answer["content"] == "Every 40 days [1]."
    assert answer["stats"] == {
        "prompt_tokens": 120,
        "completion_tokens": 12,
        "ttft_ms": 80,
        "tokens_per_s": 31.5,
        "model": "SmolLM2-test",
        "cached_tokens": None,
    }
    assert answer["citations"] == [
        {
            "n": 1,
            "document": str(PASSAGE.document_id),
            "ordinal": 0,
            "title": "Zorblax 3000 manual",
            "location": "Descaling",
            "page": None,
            "text": PASSAGE.text,
            "score": 0.0312,
            "highlight": [],
            "available": True,
        }
    ]
    assert (answer["feedback"], answer["feedback_comment"]) == ("up", "spot on")


def test_feedback_rates_an_answer_with_a_comment_and_can_be_undone(alice_client, descaling):
    answer = answers(descaling)[0]
    url = reverse("chat:feedback", args=[answer.public_id])
    response = alice_client.post(url, {"value": "down", "comment": "Wrong number of days"})
    assert response.json() == {"feedback": "down", "comment": "Wrong number of days"}
    answer.refresh_from_db()
    assert (answer.feedback, answer.feedback_comment) == (Feedback.DOWN, "Wrong number of days")

    alice_client.post(url, {"value": "none"})
    answer.refresh_from_db()
    assert (answer.feedback, answer.feedback_comment) == (Feedback.NONE, "")


def test_feedback_with_a_bad_value_is_refused_and_changes_nothing(alice_client, descaling):
    answer = answers(descaling)[0]
    url = reverse("chat:feedback", args=[answer.public_id])
    response = alice_client.post(url, {"value": "sideways"})
    assert response.status_code == 400 and "value" in response.json()["error"]
    response = alice_client.post(url, {"value": "up", "comment": "x" * 2001})
    assert response.status_code == 400 and "comment" in response.json()["error"]
    answer.refresh_from_db()
    assert answer.feedback == Feedback.NONE


def test_questions_cannot_be_rated(alice_client, descaling):
    question = descaling.messages.get(role="user")
    response = alice_client.post(reverse("chat:feedback", args=[question.public_id]), {"value": "up"})
    assert response.status_code == 404


def test_settings_are_validated_and_remembered_per_conversation(alice_client, descaling, alice):
    other = make_conversation(alice, title="Other")
    url = reverse("chat:settings", args=[descaling.public_id])
    chosen = {"mode": "sampling", "temperature": 1.2, "top_k": 50, "top_p": 0.9, "max_tokens": 100, "seed": None}
    response = alice_client.post(url, json.dumps(chosen), content_type="application/json")
    assert response.status_code == 200
    assert response.json()["settings"] == chosen
    descaling.refresh_from_db()
    other.refresh_from_db()
    assert descaling.settings == chosen
    assert other.settings == {}
    # The panel shows them when the conversation is opened again.
    body = alice_client.get(page(descaling)).content.decode()
    assert 'name="temperature" min="0" max="2" step="0.05" value="1.2"' in body
    assert 'value="sampling" checked' in body


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": 3},
        {"top_p": -0.1},
        {"top_k": 101},
        {"max_tokens": 0},
        {"mode": "random"},
        {"unknown": 1},
        ["not", "an", "object"],
    ],
)
def test_bad_settings_are_refused_with_a_message_and_nothing_changes(alice_client, descaling, bad):
    url = reverse("chat:settings", args=[descaling.public_id])
    response = alice_client.post(url, json.dumps(bad), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]
    descaling.refresh_from_db()
    assert descaling.settings == {}


def test_settings_with_malformed_json_are_refused(alice_client, descaling):
    url = reverse("chat:settings", args=[descaling.public_id])
    response = alice_client.post(url, "{oops", content_type="application/json")
    assert response.status_code == 400


def checked(conversation: Conversation, **fields) -> Message:
    """Give the conversation's answer the evidence, grounding and highlights the answering
    pipeline saves (set through the ORM: these tests are about the page, not the pipeline)."""
    answer = answers(conversation)[0]
    highlight = fields.pop("highlight", [])
    Message.objects.filter(pk=answer.pk).update(**fields)
    Citation.objects.filter(message=answer).update(highlight=highlight)
    return answer


def test_a_saved_answer_shows_its_evidence_quote_with_its_citation(alice_client, descaling):
    checked(descaling, evidence={"text": "The Zorblax 3000 must be descaled every 40 days.", "source": 1})
    body = alice_client.get(page(descaling)).content.decode()
    quote = body[body.index('<figure class="evidence">') : body.index("</figure>")]
    assert "From your documents" in quote
    assert '<span class="evidence-text">The Zorblax 3000 must be descaled every 40 days.</span>' in quote
    assert 'class="cite" data-n="1" aria-label="Source 1: Zorblax 3000 manual, Descaling"' in quote
    # Above the model's answer.
    assert body.index('<figure class="evidence">') < body.index('<div class="msg-body md">Every 40 days [1].')


def test_an_answer_without_evidence_has_no_quote(alice_client, descaling):
    assert '<figure class="evidence">' not in alice_client.get(page(descaling)).content.decode()


def test_a_saved_answer_carries_its_grounding_highlights_and_document_link_data(alice_client, descaling):
    grounding = [
        {"text": "Every 40 days [1].", "supported": True, "sources": [1]},
        {"text": "Use vinegar.", "supported": False, "sources": []},
    ]
    checked(
        descaling,
        grounding=grounding,
        finish_reason="loop",
        highlight=[{"text": "The Zorblax 3000 must be descaled every 40 days.", "start": 0, "end": 48}],
    )
    response = alice_client.get(page(descaling))
    body = response.content.decode()
    # chat.js flags the sentences from this data (one rendering path for live and saved answers).
    data = body[body.index('<div class="msg-grounding" hidden>') :]
    data = data[data.index(">", data.index("<script")) + 1 : data.index("</script>")]
    assert json.loads(data) == grounding
    source = f'data-document="{PASSAGE.document_id}" data-ordinal="0" data-hl="0-48"'
    assert source in body
    assert "Cut short: the model started repeating itself." in body
    config = response.context["chat_config"]
    assert config["documentUrl"] == reverse("documents:detail", args=[config["idPlaceholder"]])


def test_evidence_and_grounding_text_cannot_inject_markup(alice_client, descaling):
    checked(
        descaling,
        evidence={"text": "<img src=x onerror=alert(1)>", "source": 1},
        grounding=[{"text": "</script><script>alert(2)</script>", "supported": False, "sources": []}],
    )
    body = alice_client.get(page(descaling)).content.decode()
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "<script>alert(2)" not in body


def test_the_start_page_question_box_sends_with_enter(alice_client):
    body = alice_client.get(reverse("chat:home")).content.decode()
    # chat.js sends #start-form when Enter is pressed in #start-question (Shift+Enter: new line).
    assert 'id="start-form"' in body and 'id="start-question"' in body
    assert "Enter to send, Shift+Enter for a new line" in body
