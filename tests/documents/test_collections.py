"""Collections: named, shared sets of documents that scope a search or a conversation, and
never widen access (issue 10). Access matrix: owner, group member, other user, staff (a
superuser) and anonymous, across the API, search and scoped retrieval."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from chat.models import Conversation
from documents import retrieval, services
from documents.models import Collection, Document, Scope, ScopeUnavailable, Visibility
from tests.conftest import client_for, make_user
from tests.factories import make_ready_document

HANDBOOK = [("Travel", "Flights over 500 euros must be approved by the finance director before booking.")]
TURBINE = [("Maintenance", "The turbine gearbox oil must be replaced every 4,000 operating hours.")]
SECRET = [("Plans", "The turbine gearbox will be redesigned with ceramic bearings next year.")]


def api(client: Client, method: str, path: str, body: dict | None = None):
    kwargs = {"content_type": "application/json", "data": json.dumps(body)} if body is not None else {}
    return getattr(client, method)(f"/api/v1{path}", **kwargs)


@pytest.fixture
def library(alice, bob, team):
    """Alice's handbook and turbine manual (shared with everyone), Bob's private plans, and
    Alice's collection, shared with the team, holding the manual and Bob's plans: a
    collection may hold a document some of its readers may not read (an admin put it there)."""
    handbook = make_ready_document(alice, "Handbook", HANDBOOK, visibility=Visibility.SHARED)
    turbine = make_ready_document(alice, "Turbine manual", TURBINE, visibility=Visibility.SHARED)
    plans = make_ready_document(bob, "Bob's plans", SECRET)
    collection = Collection.objects.create(owner=alice, name="Turbines", visibility=Visibility.GROUPS)
    collection.groups.set([team])
    collection.documents.set([turbine, plans])
    return {"handbook": handbook, "turbine": turbine, "plans": plans, "collection": collection}


# --- who sees a collection --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "sees"),
    [("alice", True), ("carol", True), ("dave", False), ("admin", True), ("anonymous", False)],
)
def test_who_sees_a_group_collection(library, carol, admin_user, persona, sees):
    users = {"alice": library["collection"].owner, "carol": carol, "admin": admin_user}
    if persona == "dave":
        users["dave"] = make_user("dave")
    client = client_for(users[persona]) if persona in users else Client()
    listed = api(client, "get", "/collections/")
    detail = api(client, "get", f"/collections/{library['collection'].public_id}/")
    if persona == "anonymous":
        assert (listed.status_code, detail.status_code) == (401, 401)
        return
    names = [c["name"] for c in listed.json()["collections"]]
    assert (names == ["Turbines"]) is sees
    assert detail.status_code == (200 if sees else 404)


def test_a_collection_never_shows_a_document_its_reader_may_not_read(library, carol, bob):
    seen = api(client_for(carol), "get", f"/collections/{library['collection'].public_id}/").json()
    assert [d["title"] for d in seen["documents"]] == ["Turbine manual"]
    assert api(client_for(carol), "get", "/collections/").json()["collections"][0]["document_count"] == 1
    # Bob reads his own plans, but not Alice's group collection at all.
    assert api(client_for(bob), "get", f"/collections/{library['collection'].public_id}/").status_code == 404


# --- changing one -------------------------------------------------------------------------------


def test_alice_creates_edits_and_deletes_a_collection_and_its_documents_stay(alice_client, library):
    created = api(alice_client, "post", "/collections/", {"name": "  HR  ", "description": "People things"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["name"], body["visibility"], body["document_count"]) == ("HR", "private", 0)
    added = api(
        alice_client, "post", f"/collections/{body['id']}/documents/", {"document": str(library["handbook"].public_id)}
    )
    assert added.status_code == 201
    again = api(
        alice_client, "post", f"/collections/{body['id']}/documents/", {"document": str(library["handbook"].public_id)}
    )
    assert (again.status_code, again.json()["added"]) == (200, False)
    renamed = api(alice_client, "patch", f"/collections/{body['id']}/", {"name": "People", "visibility": "shared"})
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["visibility"]) == ("People", "shared")
    assert [d["title"] for d in renamed.json()["documents"]] == ["Handbook"]
    assert api(alice_client, "delete", f"/collections/{body['id']}/").status_code == 204
    assert not Collection.objects.filter(public_id=body["id"]).exists()
    assert Document.objects.filter(pk=library["handbook"].pk).exists()


def test_removing_a_document_from_a_collection_keeps_the_document(alice_client, library):
    path = f"/collections/{library['collection'].public_id}/documents/{library['turbine'].public_id}/"
    assert api(alice_client, "delete", path).status_code == 204
    assert list(library["collection"].documents.all()) == [library["plans"]]
    assert Document.objects.filter(pk=library["turbine"].pk).exists()
    assert api(alice_client, "delete", path).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": ""}, "needs a name"),
        ({"name": "x" * 201}, "too long"),
        ({"name": "Turbines"}, "already have a collection"),
        ({"name": "A", "visibility": "world"}, "visibility"),
        ({"name": "A", "visibility": "groups"}, "at least one group"),
        ({"name": "A", "groups": ["no-such-group"]}, "not a member"),
        ({"name": "A", "colour": "red"}, "Unknown field"),
        ({"name": 5}, "must be a string"),
    ],
)
def test_bad_collection_input_is_a_400_with_a_reason(alice_client, library, body, message):
    response = api(alice_client, "post", "/collections/", body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert Collection.objects.count() == 1


def test_naming_a_group_shares_the_collection_with_it(alice_client, team):
    response = api(alice_client, "post", "/collections/", {"name": "Team notes", "groups": ["team"]})
    assert (response.json()["visibility"], response.json()["groups"]) == ("groups", ["team"])


def test_only_the_owner_or_an_admin_changes_a_collection(library, carol, admin_user):
    path = f"/collections/{library['collection'].public_id}/"
    carol_client = client_for(carol)
    assert api(carol_client, "patch", path, {"name": "Mine now"}).status_code == 403
    assert api(carol_client, "delete", path).status_code == 403
    handbook = {"document": str(library["handbook"].public_id)}
    assert api(carol_client, "post", f"{path}documents/", handbook).status_code == 403
    assert api(client_for(admin_user), "patch", path, {"description": "Curated"}).status_code == 200
    assert Collection.objects.get().name == "Turbines"


def test_a_document_the_user_may_not_read_cannot_be_added(alice_client, library, bob):
    private = make_ready_document(bob, "Bob's diary", [("Day", "Nothing happened today at all.")])
    path = f"/collections/{library['collection'].public_id}/documents/"
    response = api(alice_client, "post", path, {"document": str(private.public_id)})
    assert response.status_code == 404
    assert api(alice_client, "post", path, {"document": "not-a-uuid"}).status_code == 400
    assert private not in library["collection"].documents.all()


def test_deleting_a_document_takes_it_out_of_every_collection(library):
    services.delete_document(library["turbine"])
    assert list(library["collection"].documents.all()) == [library["plans"]]


# --- scoped search ------------------------------------------------------------------------------


def test_a_scoped_search_returns_only_chunks_in_scope_that_the_reader_may_read(library, carol):
    question = "When is the turbine gearbox oil replaced, and what bearings are planned?"
    in_collection = retrieval.search(carol, question, 10, scope=Scope(collection=library["collection"]))
    assert {hit.title for hit in in_collection} == {"Turbine manual"}  # never Bob's private plans
    in_document = retrieval.search(carol, "finance director approval", 10, scope=Scope(document=library["handbook"]))
    assert {hit.title for hit in in_document} == {"Handbook"}
    # A question about something outside the scope never draws from outside it.
    outside = retrieval.search(
        carol, "finance director approval of flights", 10, scope=Scope(collection=library["collection"])
    )
    assert all(hit.title == "Turbine manual" for hit in outside)


def test_the_search_api_takes_a_collection_or_a_document(library, carol, bob):
    client = client_for(carol)
    found = client.get("/api/v1/search", {"q": "gearbox oil", "collection": str(library["collection"].public_id)})
    assert found.status_code == 200
    assert found.json()["scope"] == {
        "kind": "collection",
        "id": str(library["collection"].public_id),
        "name": "Turbines",
    }
    assert {r["title"] for r in found.json()["results"]} == {"Turbine manual"}
    one = client.get("/api/v1/search", {"q": "flights", "document": str(library["handbook"].public_id)})
    assert {r["title"] for r in one.json()["results"]} == {"Handbook"}
    assert client.get("/api/v1/search", {"q": "oil", "document": str(library["plans"].public_id)}).status_code == 404
    assert (
        client_for(bob)
        .get("/api/v1/search", {"q": "oil", "collection": str(library["collection"].public_id)})
        .status_code
        == 404
    )
    both = {
        "q": "oil",
        "document": str(library["handbook"].public_id),
        "collection": str(library["collection"].public_id),
    }
    assert client.get("/api/v1/search", both).status_code == 400
    assert client.get("/api/v1/search", {"q": "oil", "document": "nope"}).status_code == 400


# --- scoped conversations -----------------------------------------------------------------------


def test_a_conversation_is_started_with_a_scope_shown_and_changed(library, carol):
    client = client_for(carol)
    scope = {"collection": str(library["collection"].public_id)}
    created = api(client, "post", "/conversations/", {"scope": scope})
    assert created.status_code == 201
    assert created.json()["scope"]["name"] == "Turbines"
    path = f"/conversations/{created.json()['id']}/"
    assert api(client, "get", path).json()["scope"] == {
        "kind": "collection",
        "id": str(library["collection"].public_id),
        "name": "Turbines",
        "available": True,
    }
    changed = api(client, "patch", path, {"scope": {"document": str(library["handbook"].public_id)}})
    assert changed.json()["scope"]["name"] == "Handbook"
    assert api(client, "patch", path, {"scope": {}}).json()["scope"]["kind"] == "all"


def test_a_scope_the_user_may_not_read_is_a_404_that_reveals_nothing(library, bob, carol):
    for scope in ({"collection": str(library["collection"].public_id)}, {"document": str(library["plans"].public_id)}):
        client = client_for(carol if "document" in scope else bob)
        response = api(client, "post", "/conversations/", {"scope": scope})
        assert response.status_code == 404
        assert response.json()["error"] in ("Collection not found.", "Document not found.")
    assert api(client_for(carol), "post", "/conversations/", {"scope": {"folder": "x"}}).status_code == 400
    assert Conversation.objects.count() == 0


def test_a_deleted_or_unreadable_scope_is_reported_not_searched(library, carol):
    conversation = Conversation.objects.create(user=carol, scope_kind="document", scope_document=library["turbine"])
    assert conversation.scope_for(carol).document == library["turbine"]
    services.delete_document(library["turbine"])
    conversation.refresh_from_db()
    with pytest.raises(ScopeUnavailable, match="deleted, or you can no longer read it"):
        conversation.scope_for(carol)
    assert conversation.scope_json(carol)["available"] is False

    in_collection = Conversation.objects.create(
        user=carol, scope_kind="collection", scope_collection=library["collection"]
    )
    with pytest.raises(ScopeUnavailable, match="holds no document you can read"):
        in_collection.scope_for(carol)  # only Bob's private plans are left in it
    carol.groups.clear()
    with pytest.raises(ScopeUnavailable, match="can no longer see it"):
        Conversation.objects.get(pk=in_collection.pk).scope_for(carol)
    library["collection"].delete()
    in_collection.refresh_from_db()
    assert (in_collection.scope_kind, in_collection.scope_collection) == ("collection", None)


# --- pages --------------------------------------------------------------------------------------


def test_collection_pages_follow_the_access_rule(library, carol, bob, admin_user):
    collection = library["collection"]
    detail = f"/documents/collections/{collection.public_id}/"
    edit = f"{detail}edit/"
    alice_client = client_for(collection.owner)
    assert alice_client.get("/documents/collections/").status_code == 200
    page = alice_client.get(detail)
    assert page.status_code == 200 and b"Turbine manual" in page.content
    assert b"Bob&#x27;s plans" not in page.content and b"Bob's plans" not in page.content  # Alice cannot read them
    assert alice_client.get(edit).status_code == 200
    carol_client = client_for(carol)
    assert carol_client.get(detail).status_code == 200
    assert carol_client.get(edit).status_code == 403
    assert carol_client.post(f"{detail}delete/").status_code == 403
    assert client_for(bob).get(detail).status_code == 404
    assert Client().get(detail).status_code == 302  # to the sign-in page
    assert client_for(admin_user).get(edit).status_code == 200


def test_alice_makes_a_collection_and_fills_it_from_both_pages(alice_client, library):
    response = alice_client.post(
        "/documents/collections/new/", {"name": "Policies", "description": "", "visibility": "private"}
    )
    assert response.status_code == 302
    policies = Collection.objects.get(name="Policies")
    # From the collection's page...
    alice_client.post(
        f"/documents/collections/{policies.public_id}/add/", {"document": str(library["handbook"].public_id)}
    )
    # ...and from the document's page.
    alice_client.post(
        f"/documents/{library['turbine'].public_id}/collections/", {"collection": str(policies.public_id)}
    )
    assert set(policies.documents.all()) == {library["handbook"], library["turbine"]}
    detail = alice_client.get(f"/documents/{library['handbook'].public_id}/")
    assert b"Policies" in detail.content and b"Ask about this document" in detail.content
    alice_client.post(f"/documents/collections/{policies.public_id}/remove/{library['handbook'].public_id}/")
    assert list(policies.documents.all()) == [library["turbine"]]
    assert alice_client.post(f"/documents/collections/{policies.public_id}/delete/").status_code == 302
    assert Document.objects.filter(pk=library["turbine"].pk).exists()


def test_a_reader_cannot_add_to_someone_elses_collection_from_a_document_page(library, carol):
    response = client_for(carol).post(
        f"/documents/{library['handbook'].public_id}/collections/", {"collection": str(library["collection"].public_id)}
    )
    assert response.status_code == 302
    assert library["handbook"] not in library["collection"].documents.all()


def test_an_upload_can_go_straight_into_a_collection(alice_client, library):
    from django.core.files.uploadedfile import SimpleUploadedFile

    collection = library["collection"]
    page = alice_client.get(f"/documents/upload/?collection={collection.public_id}")
    assert page.status_code == 200 and b"Turbines" in page.content
    upload = SimpleUploadedFile("blades.md", b"# Blades\n\nInspect the blades yearly.", content_type="text/markdown")
    response = alice_client.post(
        "/documents/upload/", {"file": upload, "visibility": "private", "collection": str(collection.public_id)}
    )
    assert response.status_code == 302
    assert collection.documents.filter(original_name="blades.md").exists()


def test_the_api_upload_refuses_a_collection_the_caller_cannot_change(library, carol):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("x.txt", b"Some text for the test.", content_type="text/plain")
    response = client_for(carol).post(
        "/api/v1/documents/", {"file": upload, "collection": str(library["collection"].public_id)}
    )
    assert response.status_code == 400
    assert "no collection with that id" in response.json()["error"]
    assert not Document.objects.filter(title="x").exists()


def test_ask_about_this_document_starts_a_conversation_scoped_to_it(alice_client, alice, library, bob):
    response = alice_client.post("/new/", {"document": str(library["handbook"].public_id)})
    conversation = Conversation.objects.get(user=alice)
    assert response.status_code == 302
    assert (conversation.scope_kind, conversation.scope_document) == ("document", library["handbook"])
    page = alice_client.get(f"/c/{conversation.public_id}/")
    assert b"Document: Handbook" in page.content
    # The header's picker changes it; a scope Alice may not read is a 404.
    alice_client.post(f"/c/{conversation.public_id}/scope/", {"scope": f"collection:{library['collection'].public_id}"})
    conversation.refresh_from_db()
    assert conversation.scope_collection == library["collection"]
    assert (
        alice_client.post(
            f"/c/{conversation.public_id}/scope/", {"scope": f"document:{library['plans'].public_id}"}
        ).status_code
        == 404
    )
    assert alice_client.post("/new/", {"document": str(library["plans"].public_id)}).status_code == 404
    assert Conversation.objects.filter(user=alice).count() == 1


def test_the_admin_lists_collections_and_their_documents(library, admin_user):
    client = client_for(admin_user)
    listing = client.get("/admin/documents/collection/", {"visibility__exact": "groups", "q": "Turb"})
    assert listing.status_code == 200 and b"Turbines" in listing.content
    page = client.get(f"/admin/documents/collection/{library['collection'].pk}/change/")
    assert page.status_code == 200 and b"Turbine manual" in page.content


def test_the_chat_start_page_offers_the_collections_and_starts_a_scoped_conversation(library, carol):
    client = client_for(carol)
    assert "the collection “Turbines”" in client.get("/").content.decode()
    response = client.post(
        "/new/", {"question": "How often is the oil changed?", "collection": str(library["collection"].public_id)}
    )
    assert response.status_code == 302
    conversation = Conversation.objects.get(user=carol)
    assert conversation.scope_collection == library["collection"]
    refused = client.post("/new/", {"question": "x", "collection": "not-a-uuid"}, follow=True)
    assert "not the id of a collection or a document" in refused.content.decode()
    assert Conversation.objects.filter(user=carol).count() == 1


def test_a_refused_conversation_patch_changes_nothing(library, carol):
    client = client_for(carol)
    created = api(client, "post", "/conversations/", {"title": "Oil"}).json()
    path = f"/conversations/{created['id']}/"
    refused = api(client, "patch", path, {"scope": {"collection": str(library["collection"].public_id)}, "title": " "})
    assert refused.status_code == 400
    conversation = Conversation.objects.get(public_id=created["id"])
    assert (conversation.scope_kind, conversation.title) == ("all", "Oil")


def test_an_owner_who_left_the_group_still_renames_the_collection_and_keeps_it_shared(library, alice, team):
    alice.groups.remove(team)
    response = api(client_for(alice), "patch", f"/collections/{library['collection'].public_id}/", {"name": "Wind"})
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["groups"]) == ("Wind", ["team"])
