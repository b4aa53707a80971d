"""Scoped conversations over the socket: answers come only from the conversation's collection
or document, the scope can be changed with a ``scope`` frame, and a scope that is gone gets a
clear error instead of an empty search (issue 10)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from chat import services
from documents import services as document_services
from documents.models import Collection, Scope
from tests.chat.factories import make_document
from tests.chat.sockets import ON_TOPIC, events_until_end, login_headers, messages_of, of_type, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

KETTLE = [("Descaling", "The Quenchmaster kettle must be descaled every 40 days with citric acid.")]


@pytest.fixture
def kettle_manual(alice):
    return make_document(alice, "Quenchmaster kettle manual", KETTLE)


@override_settings(LLM_MAX_TOKENS=8)
async def test_a_document_scoped_conversation_answers_from_that_document_only(alice, zorblax_manual, kettle_manual):
    conversation = await database_sync_to_async(services.create_conversation)(
        alice, scope=Scope(document=kettle_manual)
    )
    communicator = await open_socket(conversation.public_id, await login_headers(alice))
    # A question about the Zorblax, asked of the kettle manual: the Zorblax manual is never used.
    await communicator.send_json_to({"type": "ask", "content": ON_TOPIC})
    events = await events_until_end(communicator)
    sources = of_type(events, "sources")[0]["sources"]
    assert {source["document"] for source in sources} <= {str(kettle_manual.public_id)}
    await communicator.disconnect()


async def test_a_scope_frame_changes_the_scope_and_a_bad_one_is_an_error(alice, bob, kettle_manual):
    conversation = await database_sync_to_async(services.create_conversation)(alice)
    collection = await database_sync_to_async(Collection.objects.create)(owner=alice, name="Kitchen")
    private = await database_sync_to_async(make_document)(bob, "Bob's notes", KETTLE)
    hidden = await database_sync_to_async(Collection.objects.create)(owner=bob, name="Bob's shelf")
    communicator = await open_socket(conversation.public_id, await login_headers(alice))

    await communicator.send_json_to({"type": "scope", "scope": {"document": str(kettle_manual.public_id)}})
    event = await communicator.receive_json_from(timeout=30)
    assert event == {
        "type": "scope",
        "scope": {
            "kind": "document",
            "id": str(kettle_manual.public_id),
            "name": "Quenchmaster kettle manual",
            "available": True,
        },
    }
    for bad, reason in [
        ({"document": str(private.public_id)}, "Document not found."),
        ({"collection": str(hidden.public_id)}, "Collection not found."),
        ({"collection": "not-a-uuid"}, "must be a UUID"),
        ({"shelf": "x"}, "A scope is"),
    ]:
        await communicator.send_json_to({"type": "scope", "scope": bad})
        event = await communicator.receive_json_from(timeout=30)
        assert event["type"] == "error" and reason in event["message"]
    await database_sync_to_async(conversation.refresh_from_db)()
    assert (conversation.scope_kind, conversation.scope_document_id) == ("document", kettle_manual.pk)

    await communicator.send_json_to({"type": "scope", "scope": {"collection": str(collection.public_id)}})
    event = await communicator.receive_json_from(timeout=30)
    # An empty collection can be chosen, and says why nothing can be asked of it yet.
    assert event["scope"]["available"] is False and "holds no document" in event["scope"]["message"]
    await communicator.disconnect()


async def test_a_question_in_a_conversation_whose_document_was_deleted_gets_a_clear_error(alice, kettle_manual):
    conversation = await database_sync_to_async(services.create_conversation)(
        alice, scope=Scope(document=kettle_manual)
    )
    await database_sync_to_async(document_services.delete_document)(kettle_manual)
    communicator = await open_socket(conversation.public_id, await login_headers(alice))
    await communicator.send_json_to({"type": "ask", "content": "How often is it descaled?"})
    event = await communicator.receive_json_from(timeout=30)
    assert event["type"] == "error"
    assert "was deleted, or you can no longer read it" in event["message"]
    assert await messages_of(conversation) == []  # nothing saved
    # The socket lives on: choosing everything again lets the question through.
    await communicator.send_json_to({"type": "scope", "scope": {}})
    assert (await communicator.receive_json_from(timeout=30))["scope"]["kind"] == "all"
    await communicator.disconnect()
