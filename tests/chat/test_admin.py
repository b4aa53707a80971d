"""Reviewers (staff with ``chat.review_conversations``) read saved conversations in the Django admin."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from chat import services
from chat.models import Conversation, Message
from documents.models import Visibility
from tests.chat.factories import answers, make_cited_document, make_conversation, make_passage
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

PASSAGE = make_passage("Zorblax 3000 manual", "Warranty", "The warranty lasts three years and covers the pump.", 0.4)


@pytest.fixture
def manual(alice):
    """The document PASSAGE comes from, shared with everyone signed in (reviewers included)."""
    return make_cited_document(alice, PASSAGE, visibility=Visibility.SHARED)


@pytest.fixture
def reviewed(alice, bob, manual):
    liked = make_conversation(
        alice, title="Warranty question", exchanges=[("How long?", "Three years [1].")], sources=[PASSAGE]
    )
    services.set_feedback(answers(liked)[0], "up", "Exactly what I needed")
    disliked = make_conversation(bob, title="Descaling question", exchanges=[("How often?", "Every day.")])
    services.set_feedback(answers(disliked)[0], "down", "Wrong: it is 40 days")
    unrated = make_conversation(bob, title="Cleaning question", exchanges=[("Dishwasher?", "Yes.")])
    return SimpleNamespace(liked=liked, disliked=disliked, unrated=unrated)


@pytest.fixture
def staff_client(db):
    """A staff member who is not a superuser and holds only ``chat.review_conversations``,
    through a group."""
    reviewers = Group.objects.create(name="reviewers")
    reviewers.permissions.add(Permission.objects.get(codename="review_conversations"))
    user = make_user("reviewer", groups=[reviewers])
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return client_for(user)


CHANGELIST = reverse("admin:chat_conversation_changelist")


def titles(response) -> set[str]:
    return {c.display_title for c in response.context["cl"].result_list}


def test_staff_see_every_users_conversations(staff_client, reviewed):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    assert titles(response) == {"Warranty question", "Descaling question", "Cleaning question"}


def test_conversation_page_shows_messages_stats_feedback_and_citations(staff_client, reviewed):
    response = staff_client.get(reverse("admin:chat_conversation_change", args=[reviewed.liked.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "How long?" in body and "Three years [1]." in body
    assert "SmolLM2-test" in body and "31.5" in body
    assert "Thumbs up" in body and "Exactly what I needed" in body
    assert "[1] Zorblax 3000 manual" in body
    # Read-only: no form fields to edit, no save button.
    assert 'name="title"' not in body
    assert 'name="_save"' not in body


def test_message_page_shows_the_cited_passages(staff_client, reviewed):
    answer = answers(reviewed.liked)[0]
    body = staff_client.get(reverse("admin:chat_message_change", args=[answer.pk])).content.decode()
    assert "The warranty lasts three years and covers the pump." in body
    assert "Warranty" in body


def test_filter_by_feedback(staff_client, reviewed):
    assert titles(staff_client.get(CHANGELIST, {"feedback": "down"})) == {"Descaling question"}
    assert titles(staff_client.get(CHANGELIST, {"feedback": "up"})) == {"Warranty question"}
    assert titles(staff_client.get(CHANGELIST, {"feedback": "any"})) == {"Warranty question", "Descaling question"}


def test_filter_by_user(staff_client, reviewed, alice):
    assert titles(staff_client.get(CHANGELIST, {"user__id__exact": alice.pk})) == {"Warranty question"}


def test_filter_by_scope(staff_client, reviewed):
    Conversation.objects.filter(pk=reviewed.liked.pk).update(scope_kind="document")
    assert titles(staff_client.get(CHANGELIST, {"scope_kind__exact": "document"})) == {"Warranty question"}
    assert len(titles(staff_client.get(CHANGELIST, {"scope_kind__exact": "all"}))) == 2


def test_search_by_message_content(staff_client, reviewed):
    assert titles(staff_client.get(CHANGELIST, {"q": "dishwasher"})) == {"Cleaning question"}
    assert titles(staff_client.get(CHANGELIST, {"q": "descaling"})) == {"Descaling question"}


def test_message_list_filters_by_feedback(staff_client, reviewed):
    response = staff_client.get(reverse("admin:chat_message_changelist"), {"feedback__exact": "-1"})
    assert [m.content for m in response.context["cl"].result_list] == ["Every day."]


def test_nobody_can_add_or_edit_conversations_in_the_admin(admin_client_, reviewed):
    assert admin_client_.get(reverse("admin:chat_conversation_add")).status_code == 403
    assert admin_client_.get(reverse("admin:chat_message_add")).status_code == 403
    url = reverse("admin:chat_conversation_change", args=[reviewed.liked.pk])
    admin_client_.post(url, {"title": "Edited"})
    reviewed.liked.refresh_from_db()
    assert reviewed.liked.title == "Warranty question"
    message = answers(reviewed.liked)[0]
    admin_client_.post(reverse("admin:chat_message_change", args=[message.pk]), {"content": "Edited"})
    message.refresh_from_db()
    assert message.content == "Three years [1]."


def test_only_superusers_may_delete_a_conversation(staff_client, admin_client_, reviewed):
    url = reverse("admin:chat_conversation_delete", args=[reviewed.unrated.pk])
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert Conversation.objects.filter(pk=reviewed.unrated.pk).exists()
    admin_client_.post(url, {"post": "yes"})
    assert not Conversation.objects.filter(pk=reviewed.unrated.pk).exists()
    assert not Message.objects.filter(conversation_id=reviewed.unrated.pk).exists()


def test_users_who_are_not_staff_cannot_open_the_review(alice_client, reviewed):
    response = alice_client.get(CHANGELIST)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def _grounded_answers(alice) -> tuple[Message, Message]:
    conversation = make_conversation(alice, title="Grounding")
    services.append_user_message(conversation, "How long is the warranty?")
    invented = services.save_assistant_message(
        conversation,
        content="Five years. It covers the pump [1].",
        sources=[PASSAGE],
        grounding=[
            {"text": "Five years.", "supported": False, "sources": []},
            {"text": "It covers the pump [1].", "supported": True, "sources": [1]},
        ],
    )
    services.append_user_message(conversation, "Does it cover the pump?")
    faithful = services.save_assistant_message(
        conversation,
        content="It covers the pump [1].",
        sources=[PASSAGE],
        grounding=[{"text": "It covers the pump [1].", "supported": True, "sources": [1]}],
        evidence={"text": "The warranty lasts three years and covers the pump.", "source": 1},
    )
    return invented, faithful


def test_staff_filter_answers_with_unsupported_sentences(staff_client, alice, manual):
    invented, faithful = _grounded_answers(alice)
    changelist = reverse("admin:chat_message_changelist")
    unsupported = staff_client.get(changelist, {"grounding": "unsupported"})
    assert list(unsupported.context["cl"].queryset) == [invented]
    supported = staff_client.get(changelist, {"grounding": "supported"})
    assert list(supported.context["cl"].queryset) == [faithful]


def test_the_review_page_shows_the_evidence_and_flags_unsupported_sentences(staff_client, alice, manual):
    invented, faithful = _grounded_answers(alice)
    page = staff_client.get(reverse("admin:chat_message_change", args=[invented.pk])).content.decode()
    assert "Five years." in page and "NOT FOUND IN THE SOURCES" in page
    page = staff_client.get(reverse("admin:chat_message_change", args=[faithful.pk])).content.decode()
    assert "“The warranty lasts three years and covers the pump.” [1]" in page
    assert "NOT FOUND IN THE SOURCES" not in page


def test_the_markdown_export_quotes_the_evidence_and_marks_unsupported_sentences(alice, manual):
    invented, faithful = _grounded_answers(alice)
    exported = services.export_markdown(invented.conversation)
    assert "Five years. _(not found in the sources)_ It covers the pump [1]." in exported
    assert "> The warranty lasts three years and covers the pump. [1]" in exported
    data = services.export_json(invented.conversation)
    assert [m.get("grounding") for m in data["messages"] if m["role"] == "assistant"] == [
        invented.grounding,
        faithful.grounding,
    ]
