"""Reading every document takes a named permission, not the staff flag (issue 11, finding 6);
a reader learns only the names of their own groups, and a failed document says why in words
a reader can use, never in raw exception text (finding 9).

alice owns three documents (private, shared with her group "team", shared with everyone
signed in) and bob one private document. "staffer" is staff with no permission at all;
"auditor" is staff holding ``documents.read_all_documents`` through a group.
"""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse

from accounts.services import create_api_token
from documents import embeddings, retrieval, tasks
from documents.models import Document, Status, Visibility
from tests.conftest import client_for, make_user
from tests.documents.web_helpers import API, bearer, make_document
from tests.factories import make_ready_document

pytestmark = pytest.mark.django_db

ADMIN_CHANGELIST = reverse("admin:documents_document_changelist")


def make_staff(username: str, *permissions: str) -> User:
    """A staff member who is not a superuser, holding ``permissions`` ("app.codename")
    through a group of their own."""
    user = make_user(username)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    if permissions:
        group = Group.objects.create(name=f"{username} permissions")
        for permission in permissions:
            app_label, codename = permission.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        user.groups.add(group)
    return user


@pytest.fixture
def docs(alice, bob, team) -> dict[str, Document]:
    return {
        "alice_private": make_document(alice, "alice private"),
        "alice_team": make_document(alice, "alice team", visibility=Visibility.GROUPS, groups=[team]),
        "alice_shared": make_document(alice, "alice shared", visibility=Visibility.SHARED),
        "bob_private": make_document(bob, "bob private"),
    }


@pytest.fixture
def staffer(db) -> User:
    return make_staff("staffer")


@pytest.fixture
def auditor(db) -> User:
    return make_staff("auditor", "documents.read_all_documents")


def listed_on_the_page(user) -> set[str]:
    response = client_for(user).get(reverse("documents:list"))
    assert response.status_code == 200
    return {document.title for document in response.context["documents"]}


def listed_by_the_api(user) -> set[str]:
    response = Client().get(API, **bearer(create_api_token(user)))
    assert response.status_code == 200
    return {item["title"] for item in response.json()["results"]}


# -- reading ----------------------------------------------------------------------------------


def test_the_staff_flag_alone_reads_like_any_other_user(staffer, docs):
    assert listed_on_the_page(staffer) == {"alice shared"}
    assert listed_by_the_api(staffer) == {"alice shared"}
    client, token = client_for(staffer), create_api_token(staffer)
    for name in ("alice_private", "alice_team", "bob_private"):
        public_id = docs[name].public_id
        assert client.get(reverse("documents:detail", args=[public_id])).status_code == 404, name
        assert client.get(reverse("documents:status", args=[public_id])).status_code == 404, name
        assert Client().get(f"{API}{public_id}/", **bearer(token)).status_code == 404, name


def test_read_all_documents_given_through_a_group_opens_every_document(auditor, docs):
    everything = {"alice private", "alice team", "alice shared", "bob private"}
    assert listed_on_the_page(auditor) == everything
    assert listed_by_the_api(auditor) == everything
    client = client_for(auditor)
    for document in docs.values():
        assert client.get(reverse("documents:detail", args=[document.public_id])).status_code == 200


def test_the_permission_works_without_the_staff_flag_and_ends_when_taken_away(alice, bob, docs):
    reader = make_staff("former auditor", "documents.read_all_documents")
    reader.is_staff = False
    reader.save(update_fields=["is_staff"])
    assert "bob private" in listed_on_the_page(reader)
    reader.groups.clear()
    assert "bob private" not in listed_on_the_page(reader)


def test_search_and_the_chats_retrieval_follow_the_same_rule(alice, staffer, auditor):
    make_ready_document(alice, "Vault", [("Codes", "The harbour vault code is HARBOR999CB7.")])
    make_ready_document(
        alice,
        "Lamp",
        [
            ("Lamp", "The harbour lamp flashes green twice."),
        ],
        visibility=Visibility.SHARED,
    )

    def found(user) -> set[str]:
        response = Client().get("/api/v1/search", {"q": "harbour vault code"}, **bearer(create_api_token(user)))
        assert response.status_code == 200
        api_titles = {hit["title"] for hit in response.json()["results"]}
        # The chat answers from retrieval.search with the asker as the user (chat.answering).
        chat_titles = {hit.title for hit in retrieval.search(user, "harbour vault code")}
        assert api_titles == chat_titles
        return api_titles

    assert found(staffer) == {"Lamp"}
    assert found(auditor) == {"Vault", "Lamp"}


# -- changing ---------------------------------------------------------------------------------


def test_the_staff_flag_alone_cannot_delete_or_reindex_someone_elses_document(staffer, docs):
    document = docs["alice_shared"]
    client = client_for(staffer)
    page = client.get(reverse("documents:detail", args=[document.public_id])).content.decode()
    assert reverse("documents:delete", args=[document.public_id]) not in page
    assert reverse("documents:reindex", args=[document.public_id]) not in page
    assert client.get(reverse("documents:delete", args=[document.public_id])).status_code == 403
    assert client.post(reverse("documents:delete", args=[document.public_id])).status_code == 403
    assert client.post(reverse("documents:reindex", args=[document.public_id])).status_code == 403
    response = Client().delete(f"{API}{document.public_id}/", **bearer(create_api_token(staffer)))
    assert response.status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()


def test_delete_and_change_permissions_manage_only_documents_their_holder_may_read(docs):
    manager = make_staff("manager", "documents.delete_document", "documents.change_document")
    client, token = client_for(manager), create_api_token(manager)
    shared = docs["alice_shared"]
    page = client.get(reverse("documents:detail", args=[shared.public_id])).content.decode()
    assert reverse("documents:delete", args=[shared.public_id]) in page
    assert reverse("documents:reindex", args=[shared.public_id]) in page
    assert Client().delete(f"{API}{shared.public_id}/", **bearer(token)).status_code == 204
    private = docs["alice_private"]
    assert client.post(reverse("documents:delete", args=[private.public_id])).status_code == 404
    assert Client().delete(f"{API}{private.public_id}/", **bearer(token)).status_code == 404
    assert Document.objects.filter(pk=private.pk).exists()


# -- the documents admin ----------------------------------------------------------------------


def test_the_documents_admin_needs_a_model_permission(staffer, docs):
    assert client_for(staffer).get(ADMIN_CHANGELIST).status_code == 403


def test_the_documents_admin_lists_only_documents_the_staff_member_may_read(docs):
    viewer = make_staff("viewer", "documents.view_document")
    client = client_for(viewer)
    response = client.get(ADMIN_CHANGELIST)
    assert response.status_code == 200
    assert {d.title for d in response.context["cl"].result_list} == {"alice shared"}
    private = docs["alice_private"]
    page = client.get(reverse("admin:documents_document_change", args=[private.pk]), follow=True)
    assert page.redirect_chain  # "does not exist": sent back to the admin index
    assert "alice private" not in page.content.decode()


def test_read_all_documents_opens_every_document_in_the_admin(docs):
    auditor = make_staff("admin auditor", "documents.view_document", "documents.read_all_documents")
    client = client_for(auditor)
    listed = {d.title for d in client.get(ADMIN_CHANGELIST).context["cl"].result_list}
    assert listed == {"alice private", "alice team", "alice shared", "bob private"}
    private = client.get(reverse("admin:documents_document_change", args=[docs["alice_private"].pk]))
    assert private.status_code == 200
    assert private.context["original"] == docs["alice_private"]


def test_the_admin_counts_each_documents_chunks_once_whatever_its_groups(alice, team):
    board = Group.objects.create(name="board")
    alice.groups.add(board)
    make_document(alice, "minutes", visibility=Visibility.GROUPS, groups=[team, board], chunks=3)
    viewer = make_staff("board viewer", "documents.view_document")
    viewer.groups.add(team, board)
    response = client_for(viewer).get(ADMIN_CHANGELIST)
    assert [(d.title, d.chunk_total) for d in response.context["cl"].result_list] == [("minutes", 3)]


# -- finding 9: group names ---------------------------------------------------------------------


@pytest.fixture
def board_minutes(alice, team) -> Document:
    """Shared with "team" (carol's group too) and "aldermen" (alice's only)."""
    aldermen = Group.objects.create(name="aldermen")
    alice.groups.add(aldermen)
    return make_document(alice, "minutes", visibility=Visibility.GROUPS, groups=[team, aldermen])


def test_a_reader_sees_only_their_own_groups_among_those_a_document_is_shared_with(carol, board_minutes):
    token = create_api_token(carol)
    detail = Client().get(f"{API}{board_minutes.public_id}/", **bearer(token)).json()
    assert detail["groups"] == ["team"]
    listed = Client().get(API, **bearer(token)).json()["results"]
    assert [item["groups"] for item in listed] == [["team"]]
    page = client_for(carol).get(reverse("documents:detail", args=[board_minutes.public_id])).content.decode()
    assert "Chosen groups: team" in page
    assert "aldermen" not in page


def test_a_reader_through_read_all_documents_learns_no_group_names_they_are_not_in(board_minutes):
    auditor = make_staff("auditor", "documents.read_all_documents")
    detail = Client().get(f"{API}{board_minutes.public_id}/", **bearer(create_api_token(auditor))).json()
    assert detail["groups"] == []


@pytest.mark.parametrize("who", ["alice", "admin"])
def test_the_owner_and_superusers_see_every_group(who, alice, admin_user, board_minutes):
    user = {"alice": alice, "admin": admin_user}[who]
    detail = Client().get(f"{API}{board_minutes.public_id}/", **bearer(create_api_token(user))).json()
    assert detail["groups"] == ["aldermen", "team"]
    page = client_for(user).get(reverse("documents:detail", args=[board_minutes.public_id])).content.decode()
    assert "Chosen groups: aldermen, team" in page


# -- finding 9: error text ----------------------------------------------------------------------

RAW_ERROR = "/srv/kb/.venv/lib/python3.11/site-packages/pypdf/_reader.py line 1987: xref table broken"


def fail_ingestion(document: Document) -> Document:
    tasks.ingest_document(document.pk)
    document.refresh_from_db()
    assert document.status == Status.FAILED
    return document


def test_an_unexpected_failure_stores_a_readable_reason_and_logs_the_raw_one(alice, monkeypatch, caplog):
    def crash(data, mime_type):
        raise RuntimeError(RAW_ERROR)

    monkeypatch.setattr(tasks, "extract", crash)
    document = make_document(alice, "broken", status=Status.PENDING, chunks=0)
    with caplog.at_level(logging.ERROR, logger="documents.tasks"):
        document = fail_ingestion(document)
    assert document.error == tasks.UNEXPECTED_FAILURE
    assert RAW_ERROR in caplog.text  # the operator still finds the cause
    shown = Client().get(f"{API}{document.public_id}/", **bearer(create_api_token(alice))).json()
    assert shown["error"] == tasks.UNEXPECTED_FAILURE
    page = client_for(alice).get(reverse("documents:detail", args=[document.public_id])).content.decode()
    assert "site-packages" not in page and "RuntimeError" not in page


def test_an_embedding_model_failure_stores_a_readable_reason_without_its_paths(alice, monkeypatch, caplog):
    def unavailable(texts, batch_size=None):
        raise embeddings.EmbeddingModelError("cannot load the embedding model from /opt/models/minilm: OSError 28")

    monkeypatch.setattr(embeddings, "embed_texts", unavailable)
    document = make_document(alice, "fine file", status=Status.PENDING, chunks=0)
    with caplog.at_level(logging.ERROR, logger="documents.tasks"):
        document = fail_ingestion(document)
    assert document.error == tasks.EMBEDDING_FAILED
    assert "/opt/models" not in document.error
    assert "/opt/models/minilm" in caplog.text
