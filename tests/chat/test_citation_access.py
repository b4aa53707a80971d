"""A cited passage is shown only while the reader may read its document (issue 11, finding 5),
and reviewing conversations takes a named permission, not the staff flag (finding 6).

alice owns the Zorblax manual, shared with everyone signed in; bob asked about it, and his
saved answer cites it, quotes its evidence sentence and highlights it. Then alice takes the
manual back (private), shares it again, or deletes it.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.services import create_api_token
from chat import services
from chat.admin import NOT_AVAILABLE
from chat.models import SOURCE_UNAVAILABLE, Citation, Conversation, Message
from documents.models import Document, Visibility
from tests.chat.factories import answers, make_cited_document, make_conversation, make_passage
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

SENTENCE = "The Zorblax 3000 must be descaled every 40 days."
PASSAGE = make_passage("Zorblax 3000 manual", "Descaling", f"{SENTENCE} Use the blue tablets.", 0.5)
HIGHLIGHT = [{"text": SENTENCE, "start": 0, "end": len(SENTENCE)}]
ANSWER = "Every 40 days [1]."
UNAVAILABLE_SOURCE = {
    "n": 1,
    "document": None,
    "ordinal": None,
    "title": SOURCE_UNAVAILABLE,
    "location": "",
    "page": None,
    "text": "",
    "score": None,
    "highlight": [],
    "available": False,
}


def cite(user, passage=PASSAGE, title: str = "") -> Conversation:
    """A conversation of ``user`` whose answer cites ``passage``, with the evidence quote and
    highlight the answering pipeline saves."""
    conversation = make_conversation(
        user, title=title, exchanges=[("How often do I descale?", ANSWER)], sources=[passage]
    )
    answer = answers(conversation)[0]
    Message.objects.filter(pk=answer.pk).update(evidence={"text": SENTENCE, "source": 1})
    Citation.objects.filter(message=answer).update(highlight=HIGHLIGHT)
    return conversation


@pytest.fixture
def manual(alice) -> Document:
    return make_cited_document(alice, PASSAGE, visibility=Visibility.SHARED)


@pytest.fixture
def bobs(bob, manual) -> Conversation:
    return cite(bob, title="Bob asks")


@pytest.fixture
def alices(alice, manual) -> Conversation:
    return cite(alice, title="Alice asks")


def surfaces(user, conversation: Conversation) -> dict:
    """Everything ``user`` is shown of ``conversation``: the page, the API, both exports."""
    client = client_for(user)
    public_id = conversation.public_id
    page = client.get(reverse("chat:conversation", args=[public_id]))
    api = Client().get(f"/api/v1/conversations/{public_id}/", HTTP_AUTHORIZATION=f"Bearer {create_api_token(user)}")
    exported = client.get(reverse("chat:export_json", args=[public_id]))
    markdown = client.get(reverse("chat:export_md", args=[public_id]))
    assert {page.status_code, api.status_code, exported.status_code, markdown.status_code} == {200}
    return {
        "page": page.content.decode(),
        "api": api.json()["messages"][1],
        "json": json.loads(exported.content)["messages"][1],
        "md": markdown.content.decode(),
    }


def assert_passage_shown(shown: dict) -> None:
    assert SENTENCE in shown["page"] and "Use the blue tablets." in shown["page"]
    assert '<figure class="evidence">' in shown["page"]
    assert f'data-hl="0-{len(SENTENCE)}"' in shown["page"]
    for data in (shown["api"], shown["json"]):
        assert data["citations"][0]["text"] == PASSAGE.text and data["citations"][0]["available"] is True
        assert data["evidence"] == {"text": SENTENCE, "source": 1}
    assert "1. **Zorblax 3000 manual** — Descaling" in shown["md"]
    assert f"> {SENTENCE} [1]" in shown["md"]


def assert_passage_hidden(shown: dict) -> None:
    page = shown["page"]
    assert "descaled every 40 days" not in page and "blue tablets" not in page
    assert "Zorblax 3000 manual" not in page and "Descaling" not in page
    assert '<figure class="evidence">' not in page
    assert 'data-hl=""' in page and 'data-document=""' in page
    # The number stays, in the answer and in its source list, and says what happened.
    assert ANSWER in page
    assert '<li class="source-unavailable" data-n="1"' in page
    assert 'aria-label="Source 1: Source no longer available"' in page
    for data in (shown["api"], shown["json"]):
        assert data["content"] == ANSWER
        assert data["citations"] == [UNAVAILABLE_SOURCE]
        assert data["evidence"] == {}
    markdown = shown["md"]
    assert "descaled every 40 days" not in markdown and "Zorblax 3000 manual" not in markdown
    assert f"1. _{SOURCE_UNAVAILABLE}_" in markdown


def test_a_cited_passage_shows_while_the_reader_may_read_its_document(bob, bobs):
    assert_passage_shown(surfaces(bob, bobs))


def test_a_document_made_private_hides_its_passages_from_everyone_else_everywhere(alice, bob, manual, bobs, alices):
    Document.objects.filter(pk=manual.pk).update(visibility=Visibility.PRIVATE)
    assert_passage_hidden(surfaces(bob, bobs))
    # Its owner still reads it, so her own answers keep their evidence.
    assert_passage_shown(surfaces(alice, alices))


def test_a_document_shared_again_shows_its_passages_again(bob, manual, bobs):
    Document.objects.filter(pk=manual.pk).update(visibility=Visibility.PRIVATE)
    Document.objects.filter(pk=manual.pk).update(visibility=Visibility.SHARED)
    assert_passage_shown(surfaces(bob, bobs))


def test_leaving_the_group_hides_the_passages_of_the_groups_documents(carol, team, manual):
    Document.objects.filter(pk=manual.pk).update(visibility=Visibility.GROUPS)
    manual.groups.set([team])
    conversation = cite(carol)
    assert_passage_shown(surfaces(carol, conversation))
    carol.groups.remove(team)
    assert_passage_hidden(surfaces(carol, conversation))


def test_deleting_the_document_erases_the_passages_answers_copied_from_it(alice, bob, manual, bobs, alices):
    confirm = client_for(alice).get(reverse("documents:delete", args=[manual.public_id])).content.decode()
    assert "removed for everyone" not in confirm
    assert "quoted in answers are erased" in confirm
    client_for(alice).post(reverse("documents:delete", args=[manual.public_id]))
    assert_passage_hidden(surfaces(bob, bobs))
    assert_passage_hidden(surfaces(alice, alices))  # the owner's own answers too
    # Erased, not only hidden: nothing of it is kept for anyone, superusers included.
    kept = Citation.objects.values_list("title", "location", "text", "highlight", "document_id")
    assert list(kept) == [("", "", "", [], None), ("", "", "", [], None)]
    assert list(Message.objects.filter(role="assistant").values_list("evidence", flat=True)) == [{}, {}]
    assert list(Message.objects.filter(role="assistant").values_list("content", flat=True)) == [ANSWER, ANSWER]


def test_deleting_the_owner_erases_the_passages_of_their_documents(alice, bob, bobs):
    alice.delete()
    assert_passage_hidden(surfaces(bob, bobs))
    assert Citation.objects.get().text == ""


def test_an_answer_saved_after_its_document_was_deleted_keeps_no_copy(bob, manual):
    conversation = make_conversation(bob)
    manual.delete()
    message = services.save_assistant_message(
        conversation, content=ANSWER, sources=[PASSAGE], evidence={"text": SENTENCE, "source": 1}
    )
    message.refresh_from_db()
    assert message.evidence == {}
    assert list(message.citations.values_list("n", "title", "text")) == [(1, "", "")]


def test_the_conversation_page_reads_access_in_one_query_however_many_citations(alice, bob, team):
    def conversation_citing(documents: int, answers_count: int) -> Conversation:
        passages = []
        for i in range(documents):
            passage = make_passage(f"Manual {i}", "Part", f"Passage {i}.", 0.5)
            visibility = [Visibility.SHARED, Visibility.PRIVATE, Visibility.GROUPS][i % 3]
            make_cited_document(alice, passage, visibility=visibility, groups=[team])
            passages.append(passage)
        exchanges = [(f"Question {i}?", "Answer [1].") for i in range(answers_count)]
        return make_conversation(bob, title=f"{documents} documents", exchanges=exchanges, sources=passages)

    few, many = conversation_citing(1, 1), conversation_citing(6, 8)
    client = client_for(bob)
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("chat:conversation", args=[few.public_id]))
    with CaptureQueriesContext(connection) as forty_eight:
        body = client.get(reverse("chat:conversation", args=[many.public_id])).content.decode()
    assert len(forty_eight) == len(one)
    # Bob may read the shared manuals (0 and 3), not alice's private or group ones.
    assert body.count('class="source-unavailable"') == 8 * 4
    assert "Passage 0." in body and "Passage 3." in body and "Passage 1." not in body


def test_citations_loaded_for_nobody_or_without_a_reader_show_nothing(bobs):
    assert [c.is_readable for c in Citation.objects.for_reader(AnonymousUser())] == [False]
    assert [c.is_readable for c in Citation.objects.for_reader(None)] == [False]
    # Fails closed: a citation not loaded through for_reader() has no passage to show.
    assert Citation.objects.get().as_source() == UNAVAILABLE_SOURCE


# -- the admin review ---------------------------------------------------------------------------


def make_staff(username: str, *codenames: str) -> User:
    """Staff, not a superuser, holding the permissions ``codenames`` through a group."""
    user = make_user(username)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    if codenames:
        group = Group.objects.create(name=f"{username} permissions")
        group.permissions.add(*Permission.objects.filter(codename__in=codenames))
        user.groups.add(group)
    return user


def review_pages(user, conversation: Conversation) -> tuple[int, str, int, str]:
    client = client_for(user)
    answer = answers(conversation)[0]
    overview = client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    message = client.get(reverse("admin:chat_message_change", args=[answer.pk]))
    return overview.status_code, overview.content.decode(), message.status_code, message.content.decode()


def test_the_staff_flag_alone_does_not_open_the_conversation_review(bobs):
    staffer = client_for(make_staff("staffer"))
    assert staffer.get(reverse("admin:chat_conversation_changelist")).status_code == 403
    assert staffer.get(reverse("admin:chat_message_changelist")).status_code == 403
    assert staffer.get(reverse("admin:chat_conversation_change", args=[bobs.pk])).status_code == 403
    index = staffer.get(reverse("admin:index")).content.decode()
    assert "Conversations" not in index


def test_review_conversations_given_through_a_group_opens_the_review(bobs):
    reviewer = client_for(make_staff("reviewer", "review_conversations"))
    response = reviewer.get(reverse("admin:chat_conversation_changelist"))
    assert response.status_code == 200
    assert [c.pk for c in response.context["cl"].result_list] == [bobs.pk]


def test_a_reviewer_sees_only_the_passages_of_documents_they_may_read(manual, bobs):
    Document.objects.filter(pk=manual.pk).update(visibility=Visibility.PRIVATE)
    reviewer = make_staff("reviewer", "review_conversations")
    overview_status, overview, message_status, message = review_pages(reviewer, bobs)
    assert (overview_status, message_status) == (200, 200)
    assert ANSWER in overview and ANSWER in message  # the conversation itself is reviewed
    for page in (overview, message):
        assert "Zorblax 3000 manual" not in page and "descaled every 40 days" not in page
    assert f"[1] {NOT_AVAILABLE}" in overview
    assert NOT_AVAILABLE in message


@pytest.mark.parametrize("who", ["reviewer who reads all", "superuser"])
def test_a_reviewer_who_may_read_every_document_sees_every_passage(who, admin_user, manual, bobs):
    Document.objects.filter(pk=manual.pk).update(visibility=Visibility.PRIVATE)
    user = admin_user if who == "superuser" else make_staff("auditor", "review_conversations", "read_all_documents")
    _, overview, _, message = review_pages(user, bobs)
    assert "[1] Zorblax 3000 manual" in overview
    assert PASSAGE.text in message
    assert f"“{SENTENCE}” [1]" in message
