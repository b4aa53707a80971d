"""The conversations JSON API: token or session auth, owners only, 404 for everyone else."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from chat.models import Conversation
from tests.chat.factories import make_cited_document, make_conversation, make_passage

pytestmark = pytest.mark.django_db

API = "/api/v1/conversations/"

PASSAGE = make_passage("Handbook", "Holidays", "Employees get twenty-five vacation days.", 0.5)


def auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_creating_a_conversation_returns_its_id_and_socket(client, alice, alice_token):
    response = client.post(API, json.dumps({"title": "Holidays"}), content_type="application/json", **auth(alice_token))
    assert response.status_code == 201
    data = response.json()
    conversation = Conversation.objects.get(public_id=data["id"])
    assert conversation.user == alice and conversation.title == "Holidays"
    assert data["socket"] == f"/ws/chat/{data['id']}/"


def test_creating_without_a_body_gives_an_untitled_conversation(client, alice_token):
    response = client.post(API, **auth(alice_token))
    assert response.status_code == 201
    assert response.json()["title"] == "New conversation"


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", json.dumps({"title": 7}), json.dumps({"title": "x" * 201})])
def test_bad_create_requests_are_refused_and_create_nothing(client, alice_token, body):
    response = client.post(API, body, content_type="application/json", **auth(alice_token))
    assert response.status_code == 400
    assert response.json()["error"]
    assert not Conversation.objects.exists()


def test_anonymous_calls_get_401(client):
    assert client.get(API).status_code == 401
    assert client.post(API).status_code == 401
    assert client.get(f"{API}{uuid.uuid4()}/").status_code == 401


def test_the_list_holds_only_my_conversations_newest_first(client, alice, bob, alice_token):
    older = make_conversation(alice, title="Older", exchanges=[("Q?", "A.")])
    newer = make_conversation(alice, title="Newer")
    make_conversation(bob, title="Bob's")
    data = client.get(API, **auth(alice_token)).json()
    assert [c["id"] for c in data["conversations"]] == [str(newer.public_id), str(older.public_id)]
    assert [c["message_count"] for c in data["conversations"]] == [0, 2]


def test_the_list_can_be_searched_by_message_content(client, alice, alice_token):
    make_conversation(alice, title="Holidays", exchanges=[("How many vacation days?", "Twenty-five.")])
    make_conversation(alice, title="Parking")
    data = client.get(API, {"q": "vacation"}, **auth(alice_token)).json()
    assert [c["title"] for c in data["conversations"]] == ["Holidays"]


def test_detail_has_messages_with_citations_stats_and_params(client, alice, alice_token):
    make_cited_document(alice, PASSAGE)
    conversation = make_conversation(
        alice, title="Holidays", exchanges=[("How many vacation days?", "Twenty-five [1].")], sources=[PASSAGE]
    )
    response = client.get(f"{API}{conversation.public_id}/", **auth(alice_token))
    assert response.status_code == 200
    data = response.json()
    assert data["title"] == "Holidays"
    question, answer = data["messages"]
    assert question["role"] == "user" and question["content"] == "How many vacation days?"
    assert "citations" not in question
    assert answer["role"] == "assistant" and answer["status"] == "complete"
    assert answer["stats"]["model"] == "SmolLM2-test" and answer["stats"]["completion_tokens"] == 12
    assert answer["params"] == {"mode": "greedy", "max_tokens": 64}
    assert answer["citations"] == [
        {
            "n": 1,
            "document": str(PASSAGE.document_id),
            "ordinal": 0,
            "title": "Handbook",
            "location": "Holidays",
            "page": None,
            "text": "Employees get twenty-five vacation days.",
            "score": 0.5,
            "highlight": [],
            "available": True,
        }
    ]
    assert (answer["finish_reason"], answer["evidence"], answer["grounding"]) == ("", {}, [])


def test_session_clients_can_read_too(alice_client, alice):
    conversation = make_conversation(alice, title="Mine")
    assert alice_client.get(f"{API}{conversation.public_id}/").json()["title"] == "Mine"


def test_session_clients_need_csrf_to_create(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(API)
    assert response.status_code == 403
    assert not Conversation.objects.exists()


def test_delete_removes_my_conversation(client, alice, alice_token):
    conversation = make_conversation(alice, title="Bye", exchanges=[("Q?", "A.")])
    response = client.delete(f"{API}{conversation.public_id}/", **auth(alice_token))
    assert response.status_code == 204
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


def test_other_users_conversations_are_404_for_read_and_delete(client, alice, bob_token):
    conversation = make_conversation(alice, title="Private")
    url = f"{API}{conversation.public_id}/"
    assert client.get(url, **auth(bob_token)).status_code == 404
    assert client.delete(url, **auth(bob_token)).status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_unknown_ids_are_404(client, alice_token):
    assert client.get(f"{API}{uuid.uuid4()}/", **auth(alice_token)).status_code == 404


def test_unsupported_methods_get_405(client, alice, alice_token):
    conversation = make_conversation(alice)
    assert client.put(API, **auth(alice_token)).status_code == 405
    assert client.post(f"{API}{conversation.public_id}/", **auth(alice_token)).status_code == 405
