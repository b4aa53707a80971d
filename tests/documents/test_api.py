"""The documents JSON API: upload, list, detail, delete, and every bad input it must refuse."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from documents import api
from documents.models import Chunk, Document, Status, Visibility
from tests.conftest import client_for
from tests.documents.web_helpers import API, GUIDE_MD, bearer, make_document, markdown_file

pytestmark = pytest.mark.django_db


def post(token: str, data: dict):
    return Client().post(API, data, **bearer(token))


def test_uploading_returns_201_and_the_document_becomes_ready(alice_token, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(alice_token, {"file": markdown_file(), "title": "Garden"})
    assert response.status_code == 201
    body = response.json()
    assert body["duplicate"] is False
    assert body["title"] == "Garden"
    assert body["status"] in {Status.PENDING, Status.PROCESSING, Status.READY}
    assert response["Location"].endswith(f"{API}{body['id']}/")

    detail = Client().get(f"{API}{body['id']}/", **bearer(alice_token)).json()
    assert detail["status"] == Status.READY, detail["error"]
    assert detail["progress"] == 100
    assert detail["error"] == ""
    assert detail["chunk_count"] == Chunk.objects.filter(document__public_id=body["id"]).count() > 0
    assert detail["visibility"] == Visibility.PRIVATE
    assert detail["owner"] == "alice"
    assert detail["original_name"] == "guide.md"
    assert detail["mime_type"] == "text/markdown"
    assert detail["size"] == len(GUIDE_MD)
    assert {"id", "title", "status", "progress", "error", "chunk_count", "visibility", "created"} <= detail.keys()


def test_the_same_bytes_again_answer_200_duplicate_with_the_existing_id(
    alice, alice_token, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = post(alice_token, {"file": markdown_file()}).json()
        again = post(alice_token, {"file": markdown_file("copy.md")})
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == first["id"]
    assert Document.objects.filter(owner=alice).count() == 1


def test_groups_can_be_named_or_given_by_id(alice, team, alice_token, django_capture_on_commit_callbacks):
    second = Group.objects.create(name="garden club")
    alice.groups.add(second)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(alice_token, {"file": markdown_file(), "groups": f"team,{second.pk}"})
    assert response.status_code == 201
    body = response.json()
    assert body["visibility"] == Visibility.GROUPS
    assert body["groups"] == ["garden club", "team"]


def test_sharing_with_a_group_the_caller_is_not_in_is_a_400_that_does_not_reveal_it(alice_token):
    secret = Group.objects.create(name="secret-club")
    for groups in ["secret-club", str(secret.pk), "no-such-group"]:
        response = post(alice_token, {"file": markdown_file(), "visibility": "groups", "groups": groups})
        assert response.status_code == 400
        assert "not a member" in response.json()["error"]
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"visibility": "public"}, "'visibility' must be one of"),
        ({"visibility": "groups"}, "at least one group"),
        ({"visibility": "shared", "groups": "team"}, "only applies"),
        ({"title": "x" * 301}, "title is too long"),
    ],
)
def test_bad_fields_are_a_400_and_store_nothing(alice_token, fields, message):
    response = post(alice_token, {"file": markdown_file(), **fields})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Document.objects.exists()


def test_a_request_without_the_file_field_is_a_400(alice_token):
    response = post(alice_token, {"title": "nothing attached"})
    assert response.status_code == 400
    assert "'file'" in response.json()["error"]
    response = Client().post(API, data=b'{"file": "x"}', content_type="application/json", **bearer(alice_token))
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]


def test_an_empty_file_is_a_400(alice_token):
    response = post(alice_token, {"file": SimpleUploadedFile("empty.md", b"")})
    assert response.status_code == 400
    assert response.json()["code"] == "empty"
    assert "empty" in response.json()["error"]
    assert not Document.objects.exists()


@override_settings(UPLOAD_MAX_BYTES=100)
def test_a_file_over_the_limit_is_a_413(alice_token):
    response = post(alice_token, {"file": markdown_file()})
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert "the largest file you can upload is 100 bytes" in response.json()["error"]
    assert not Document.objects.exists()


def test_a_body_far_over_the_limit_is_refused_before_it_is_parsed(alice_token, settings, monkeypatch):
    settings.UPLOAD_MAX_BYTES = 1000

    def fail(*args, **kwargs):  # pragma: no cover - reached only if the body were parsed
        raise AssertionError("the body was parsed")

    monkeypatch.setattr("django.http.request.HttpRequest._load_post_and_files", fail)
    big = markdown_file(data=b"# Big\n\n" + b"word " * 40_000)
    response = post(alice_token, {"file": big})
    assert response.status_code == 413
    assert "the largest file you can upload is 1000 bytes" in response.json()["error"]
    assert not Document.objects.exists()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("report.pdf", b"Quarterly numbers, typed as plain text.\n" * 5, {400, 415}, "not a PDF"),
        ("notes.zip", _zip(), {415}, "ZIP archive"),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, {415}, "PNG image"),
        ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 256, {415}, "program"),
    ],
)
def test_files_that_are_not_supported_documents_are_refused(alice_token, name, data, status, message):
    response = post(alice_token, {"file": SimpleUploadedFile(name, data)})
    assert response.status_code in status
    assert message in response.json()["error"]
    assert not Document.objects.exists()


def test_a_file_name_with_folders_and_control_characters_is_stored_clean(
    alice, alice_token, django_capture_on_commit_callbacks
):
    # Built by hand: the test client would strip the folders itself.
    boundary = "kbboundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="../../etc/\x01bad\x1bname.md"\r\n'
            "Content-Type: text/markdown\r\n\r\n"
        ).encode()
        + GUIDE_MD
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().generic(
            "POST", API, body, content_type=f"multipart/form-data; boundary={boundary}", **bearer(alice_token)
        )
    assert response.status_code == 201, response.content
    assert response.json()["original_name"] == "badname.md"
    assert Document.objects.get(owner=alice).original_name == "badname.md"


def test_the_list_is_paginated(alice, alice_token, monkeypatch):
    monkeypatch.setattr(api, "PAGE_SIZE", 2)
    for i in range(3):
        make_document(alice, f"doc {i}")
    first = Client().get(API, **bearer(alice_token)).json()
    assert first["count"] == 3 and first["pages"] == 2 and len(first["results"]) == 2
    assert first["results"][0]["title"] == "doc 2"  # newest first
    assert first["next"].endswith("?page=2") and first["previous"] is None
    second = Client().get(first["next"], **bearer(alice_token)).json()
    assert [d["title"] for d in second["results"]] == ["doc 0"]
    assert Client().get(API, {"page": "x"}, **bearer(alice_token)).status_code == 400
    assert Client().get(API, {"page": 9}, **bearer(alice_token)).status_code == 404


def test_the_list_reports_chunk_counts(alice, alice_token):
    make_document(alice, "three", chunks=3)
    body = Client().get(API, **bearer(alice_token)).json()
    assert body["results"][0]["chunk_count"] == 3


def test_the_owner_deletes_with_204_and_then_it_is_gone(alice, alice_token):
    document = make_document(alice, "old")
    url = f"{API}{document.public_id}/"
    response = Client().delete(url, **bearer(alice_token))
    assert response.status_code == 204
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(document_id=document.pk).exists()
    assert Client().get(url, **bearer(alice_token)).status_code == 404
    assert Client().delete(url, **bearer(alice_token)).status_code == 404


def test_another_users_private_document_is_a_404_for_every_method(alice, bob_token):
    document = make_document(alice, "private plans")
    url = f"{API}{document.public_id}/"
    for method in ("get", "delete"):
        response = getattr(Client(), method)(url, **bearer(bob_token))
        assert response.status_code == 404
        assert "private plans" not in response.content.decode()
    assert response.json() == Client().get(f"{API}{uuid.uuid4()}/", **bearer(bob_token)).json()
    assert Document.objects.filter(pk=document.pk).exists()


def test_methods_the_api_does_not_offer_are_a_405(alice, alice_token):
    document = make_document(alice, "doc")
    assert Client().put(f"{API}{document.public_id}/", **bearer(alice_token)).status_code == 405
    assert Client().delete(API, **bearer(alice_token)).status_code == 405


def test_the_browser_session_works_but_writes_need_the_csrf_token(alice, alice_client):
    assert alice_client.get(API).status_code == 200
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    response = strict.post(API, {"file": markdown_file()})
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert not Document.objects.exists()


def test_staff_see_every_document_with_its_owner(alice, bob, admin_user):
    make_document(alice, "a")
    make_document(bob, "b")
    admin = client_for(admin_user)
    owners = {item["owner"] for item in admin.get(API).json()["results"]}
    assert owners == {"alice", "bob"}
