"""Several files in one upload, from the API and the site: stored all or none, each document
like a single upload's, with the same sharing, one ingestion run, and clear errors."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from documents.models import Collection, Document, Status, Visibility
from tests.documents.web_helpers import API, bearer

pytestmark = pytest.mark.django_db

UPLOAD = "/documents/upload/"


def note(n: int, size: int = 0) -> SimpleUploadedFile:
    text = f"# Note {n}\n\nField note number {n} about turbine blade {n * 7}.\n"
    return SimpleUploadedFile(f"note-{n}.md", (text + "x" * max(0, size - len(text))).encode(), "text/markdown")


def post(token: str, data: dict):
    return Client().post(API, data, **bearer(token))


def test_several_files_through_the_api_become_documents_in_order_and_all_get_ready(
    alice, team, alice_token, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(alice_token, {"file": [note(1), note(2), note(3)], "groups": "team"})
    assert response.status_code == 201, response.content
    bodies = response.json()["documents"]
    assert [body["original_name"] for body in bodies] == ["note-1.md", "note-2.md", "note-3.md"]
    assert [body["duplicate"] for body in bodies] == [False, False, False]
    assert all(body["visibility"] == Visibility.GROUPS and body["groups"] == ["team"] for body in bodies)
    assert len(callbacks) == 1  # one ingestion run for the lot
    documents = Document.objects.filter(owner=alice)
    assert documents.count() == 3
    assert set(documents.values_list("status", flat=True)) == {Status.READY}
    assert all(list(document.groups.all()) == [team] for document in documents)


def test_files_already_uploaded_or_repeated_are_duplicates_and_store_nothing_more(
    alice, alice_token, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = post(alice_token, {"file": note(1)}).json()
        response = post(alice_token, {"file": [note(1), note(2), note(2)]})
    assert response.status_code == 201
    bodies = response.json()["documents"]
    assert [body["duplicate"] for body in bodies] == [True, False, True]
    assert bodies[0]["id"] == first["id"]
    assert bodies[1]["id"] == bodies[2]["id"]
    assert Document.objects.filter(owner=alice).count() == 2

    again = post(alice_token, {"file": [note(1), note(2)]})
    assert again.status_code == 200
    assert [body["duplicate"] for body in again.json()["documents"]] == [True, True]


@pytest.mark.parametrize(
    "bad, status, code, message",
    [
        (SimpleUploadedFile("empty.md", b"", "text/markdown"), 400, "empty", "empty.md: The file is empty."),
        (
            SimpleUploadedFile("tool.exe", b"MZ\x90\x00" + b"\x00" * 200, "application/octet-stream"),
            415,
            "unsupported",
            "tool.exe: ",
        ),
    ],
)
def test_one_bad_file_refuses_the_whole_upload_naming_it(alice, alice_token, bad, status, code, message):
    response = post(alice_token, {"file": [note(1), bad, note(2)]})
    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["error"].startswith(message)
    assert not Document.objects.filter(owner=alice).exists()


def test_more_files_than_allowed_or_too_many_bytes_together_are_refused(alice, alice_token, settings):
    settings.UPLOAD_MAX_FILES = 2
    response = post(alice_token, {"file": [note(1), note(2), note(3)]})
    assert response.status_code == 400
    assert response.json() == {
        "error": "That is too many files at once: upload at most 2 at a time.",
        "code": "invalid",
    }

    settings.UPLOAD_MAX_FILES = 10
    settings.UPLOAD_MAX_BYTES = 1000
    response = post(alice_token, {"file": [note(1, 600), note(2, 600)]})
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert "These 2 files take 1.2 KB together" in response.json()["error"]
    assert not Document.objects.filter(owner=alice).exists()


def test_django_stops_parsing_far_too_many_files_and_the_api_still_answers_in_json(alice, alice_token, settings):
    settings.UPLOAD_MAX_FILES = 2
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    response = post(alice_token, {"file": [note(n) for n in range(5)]})
    assert response.status_code == 400
    assert response.json()["error"] == "That is too many files at once: upload at most 2 at a time."
    assert not Document.objects.filter(owner=alice).exists()


def test_the_quota_counts_the_new_files_together(alice, alice_token, settings):
    settings.USER_MAX_DOCUMENTS = 3
    settings.USER_MAX_BYTES = 0
    assert post(alice_token, {"file": note(1)}).status_code == 201
    response = post(alice_token, {"file": [note(1), note(2), note(3), note(4)]})
    assert response.status_code == 409
    assert response.json()["error"] == (
        "alice has 1 documents and may keep 3; these 3 files would take them past that. Delete some to upload more."
    )
    assert Document.objects.filter(owner=alice).count() == 1
    # Within the quota (one is a duplicate and counts nothing): stored.
    assert post(alice_token, {"file": [note(1), note(2), note(3)]}).status_code == 201
    assert Document.objects.filter(owner=alice).count() == 3


def test_a_title_names_one_file_only(alice, alice_token):
    response = post(alice_token, {"file": [note(1), note(2)], "title": "Both"})
    assert response.status_code == 400
    assert "A title names one document" in response.json()["error"]
    assert not Document.objects.filter(owner=alice).exists()


def test_the_site_uploads_several_files_into_a_collection_and_lists_them(alice, alice_client):
    collection = Collection.objects.create(owner=alice, name="Notes")
    page = alice_client.get(UPLOAD)
    assert b'type="file" name="file" multiple' in page.content

    response = alice_client.post(
        UPLOAD, {"file": [note(1), note(2)], "visibility": "private", "collection": str(collection.public_id)}
    )
    assert response.status_code == 302
    assert response["Location"] == "/documents/"
    listing = alice_client.get("/documents/")
    assert "Uploaded 2 documents; they will be searchable once they are ready." in listing.content.decode()
    assert set(collection.documents.values_list("original_name", flat=True)) == {"note-1.md", "note-2.md"}

    again = alice_client.post(UPLOAD, {"file": [note(2), note(3)], "visibility": "private"}, follow=True)
    assert (
        "Uploaded 1 document; it will be searchable once it is ready. 1 of the files was uploaded already."
        in again.content.decode()
    )


def test_the_site_shows_a_bad_file_as_a_form_error_and_stores_nothing(alice, alice_client, settings):
    empty = SimpleUploadedFile("empty.md", b"", "text/markdown")
    response = alice_client.post(UPLOAD, {"file": [note(1), empty], "visibility": "private"})
    assert response.status_code == 400
    assert response.context["form"].errors["file"] == ["empty.md: The file is empty."]

    settings.UPLOAD_MAX_FILES = 1
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = alice_client.post(UPLOAD, {"file": [note(1), note(2), note(3)], "visibility": "private"})
    assert response.status_code == 400
    assert "too many files at once: upload at most 1" in response.content.decode()
    assert not Document.objects.filter(owner=alice).exists()
