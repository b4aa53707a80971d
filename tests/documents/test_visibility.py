"""Who may read and change which document, through the pages and the API.

alice owns four documents: private, shared with her group "team", shared with everyone
signed in, and (bob's) a private one of bob's. carol is in "team"; bob is in no group;
admin is staff.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import create_api_token
from documents.models import Chunk, Document, Visibility
from tests.conftest import client_for
from tests.documents.web_helpers import API, bearer, make_document

pytestmark = pytest.mark.django_db


@pytest.fixture
def docs(alice, bob, carol, team):
    return {
        "alice_private": make_document(alice, "alice private"),
        "alice_team": make_document(alice, "alice team", visibility=Visibility.GROUPS, groups=[team]),
        "alice_shared": make_document(alice, "alice shared", visibility=Visibility.SHARED),
        "bob_private": make_document(bob, "bob private"),
    }


READABLE = {
    "alice": {"alice_private", "alice_team", "alice_shared"},
    "carol": {"alice_team", "alice_shared"},
    "bob": {"alice_shared", "bob_private"},
    "admin": {"alice_private", "alice_team", "alice_shared", "bob_private"},
}
PERSONAS = list(READABLE)


@pytest.fixture
def people(alice, bob, carol, admin_user):
    return {"alice": alice, "bob": bob, "carol": carol, "admin": admin_user}


@pytest.mark.parametrize("who", PERSONAS)
def test_the_documents_page_lists_exactly_what_each_person_may_read(who, people, docs):
    response = client_for(people[who]).get(reverse("documents:list"))
    assert response.status_code == 200
    listed = {document.title.replace(" ", "_") for document in response.context["documents"]}
    assert listed == READABLE[who]
    page = response.content.decode()
    for name, document in docs.items():
        assert (document.title in page) == (name in READABLE[who])


@pytest.mark.parametrize("who", PERSONAS)
def test_the_api_lists_exactly_what_each_person_may_read(who, people, docs):
    token = create_api_token(people[who])
    response = Client().get(API, **bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert {item["title"].replace(" ", "_") for item in body["results"]} == READABLE[who]
    assert body["count"] == len(READABLE[who])


@pytest.mark.parametrize("who", PERSONAS)
def test_document_pages_and_api_details_open_only_for_readers(who, people, docs):
    client = client_for(people[who])
    token = create_api_token(people[who])
    for name, document in docs.items():
        expected = 200 if name in READABLE[who] else 404
        assert client.get(reverse("documents:detail", args=[document.public_id])).status_code == expected, name
        assert client.get(reverse("documents:status", args=[document.public_id])).status_code == expected, name
        api = Client().get(f"{API}{document.public_id}/", **bearer(token))
        assert api.status_code == expected, name
        if expected == 404:
            assert document.title not in api.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in_and_the_api_says_401(docs):
    client = Client()
    document = docs["alice_shared"]
    for url in [
        reverse("documents:list"),
        reverse("documents:upload"),
        reverse("documents:detail", args=[document.public_id]),
        reverse("documents:delete", args=[document.public_id]),
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("accounts:login"))
    assert client.post(reverse("documents:delete", args=[document.public_id])).status_code == 302
    assert client.get(API).status_code == 401
    assert client.get(f"{API}{document.public_id}/").status_code == 401
    assert client.delete(f"{API}{document.public_id}/").status_code == 401
    assert Document.objects.filter(pk=document.pk).exists()


def test_a_reader_who_is_not_the_owner_gets_403_on_delete_and_reindex(carol, docs):
    document = docs["alice_team"]
    client = client_for(carol)
    assert client.get(reverse("documents:delete", args=[document.public_id])).status_code == 403
    assert client.post(reverse("documents:delete", args=[document.public_id])).status_code == 403
    assert client.post(reverse("documents:reindex", args=[document.public_id])).status_code == 403
    response = Client().delete(f"{API}{document.public_id}/", **bearer(create_api_token(carol)))
    assert response.status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()
    assert Chunk.objects.filter(document=document).count() == 2


def test_the_detail_page_offers_delete_and_reindex_only_to_owner_and_staff(alice, carol, admin_user, docs):
    url = reverse("documents:detail", args=[docs["alice_team"].public_id])
    delete_url = reverse("documents:delete", args=[docs["alice_team"].public_id])
    assert delete_url in client_for(alice).get(url).content.decode()
    assert delete_url in client_for(admin_user).get(url).content.decode()
    assert delete_url not in client_for(carol).get(url).content.decode()


def test_a_non_reader_gets_404_on_delete_and_reindex_and_nothing_changes(bob, docs):
    document = docs["alice_private"]
    client = client_for(bob)
    assert client.get(reverse("documents:delete", args=[document.public_id])).status_code == 404
    assert client.post(reverse("documents:delete", args=[document.public_id])).status_code == 404
    assert client.post(reverse("documents:reindex", args=[document.public_id])).status_code == 404
    response = Client().delete(f"{API}{document.public_id}/", **bearer(create_api_token(bob)))
    assert response.status_code == 404
    assert Document.objects.filter(pk=document.pk).exists()
    assert Chunk.objects.filter(document=document).count() == 2


def test_the_owner_deletes_her_document_from_the_site_with_its_chunks(alice, docs):
    document = docs["alice_private"]
    client = client_for(alice)
    confirm = client.get(reverse("documents:delete", args=[document.public_id]))
    assert confirm.status_code == 200
    assert "cannot be undone" in confirm.content.decode()
    response = client.post(reverse("documents:delete", args=[document.public_id]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("documents:list")
    assert "Deleted" in response.content.decode()
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(document_id=document.pk).exists()


def test_staff_delete_anyones_document_through_the_api(admin_user, docs):
    document = docs["bob_private"]
    response = Client().delete(f"{API}{document.public_id}/", **bearer(create_api_token(admin_user)))
    assert response.status_code == 204
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(document_id=document.pk).exists()


def test_leaving_a_group_takes_away_its_documents(carol, team, docs):
    client = client_for(carol)
    url = reverse("documents:detail", args=[docs["alice_team"].public_id])
    assert client.get(url).status_code == 200
    carol.groups.remove(team)
    assert client.get(url).status_code == 404


def test_an_unknown_document_id_is_a_404_not_an_error(alice_client, alice_token):
    missing = "00000000-0000-4000-8000-000000000000"
    assert alice_client.get(f"/documents/{missing}/").status_code == 404
    assert Client().get(f"{API}{missing}/", **bearer(alice_token)).status_code == 404
    assert alice_client.get("/documents/not-a-uuid/").status_code == 404
