"""Per-user quotas (USER_MAX_DOCUMENTS, USER_MAX_BYTES): a new document past either is refused
with a clear reason through the service, the upload page, the API and the admin; the same
bytes again are a duplicate and never count twice; staff are not exempt."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from documents.models import Document
from documents.services import UploadError, upload_document
from tests.documents.web_helpers import API, bearer

pytestmark = pytest.mark.django_db

UPLOAD = reverse("documents:upload")
ADMIN_ADD = reverse("admin:documents_document_add")


def note(n: int, size: int = 0) -> bytes:
    text = f"Note {n}: the greenhouse gate code changed on day {n}.\n"
    return (text + "x" * max(0, size - len(text))).encode()


def txt(n: int, size: int = 0) -> SimpleUploadedFile:
    return SimpleUploadedFile(f"note-{n}.txt", note(n, size), content_type="text/plain")


@pytest.fixture
def two_documents_each(settings):
    settings.USER_MAX_DOCUMENTS = 2
    settings.USER_MAX_BYTES = 0


@pytest.fixture
def one_kilobyte_each(settings):
    settings.USER_MAX_DOCUMENTS = 0
    settings.USER_MAX_BYTES = 1000


# -- the service --------------------------------------------------------------------------------


def test_a_document_past_the_count_quota_is_refused_and_nothing_is_stored(alice, two_documents_each):
    upload_document(alice, file_name="1.txt", data=note(1))
    upload_document(alice, file_name="2.txt", data=note(2))
    with pytest.raises(UploadError) as refused:
        upload_document(alice, file_name="3.txt", data=note(3))
    assert refused.value.code == "quota"
    assert refused.value.message == (
        "alice already has 2 documents, the most one person may keep. Delete some to upload more."
    )
    assert Document.objects.filter(owner=alice).count() == 2


def test_a_document_past_the_byte_quota_is_refused_with_the_sizes(alice, one_kilobyte_each):
    upload_document(alice, file_name="1.txt", data=note(1, 600))
    with pytest.raises(UploadError) as refused:
        upload_document(alice, file_name="2.txt", data=note(2, 500))
    assert refused.value.code == "quota"
    assert refused.value.message == (
        "alice's documents take 600 bytes; this file (500 bytes) would take them past 1000 bytes, "
        "the most one person may keep. Delete some to upload more."
    )
    upload_document(alice, file_name="3.txt", data=note(3, 400))  # exactly at the quota: fine
    assert Document.objects.filter(owner=alice).count() == 2


def test_the_same_bytes_again_never_count_twice(alice, two_documents_each):
    first, _ = upload_document(alice, file_name="1.txt", data=note(1))
    upload_document(alice, file_name="2.txt", data=note(2))
    # At the quota, the same bytes are still answered with the existing document.
    again, created = upload_document(alice, file_name="copy.txt", data=note(1))
    assert (again, created) == (first, False)
    assert Document.objects.filter(owner=alice).count() == 2


def test_quotas_are_per_owner(alice, bob, two_documents_each):
    upload_document(alice, file_name="1.txt", data=note(1))
    upload_document(alice, file_name="2.txt", data=note(2))
    upload_document(bob, file_name="1.txt", data=note(1))
    upload_document(bob, file_name="2.txt", data=note(2))
    assert Document.objects.filter(owner=bob).count() == 2


def test_deleting_a_document_makes_room(alice, two_documents_each):
    first, _ = upload_document(alice, file_name="1.txt", data=note(1))
    upload_document(alice, file_name="2.txt", data=note(2))
    first.delete()
    _, created = upload_document(alice, file_name="3.txt", data=note(3))
    assert created


def test_staff_are_not_exempt(admin_user, two_documents_each):
    upload_document(admin_user, file_name="1.txt", data=note(1))
    upload_document(admin_user, file_name="2.txt", data=note(2))
    with pytest.raises(UploadError, match="already has 2 documents"):
        upload_document(admin_user, file_name="3.txt", data=note(3))


def test_zero_means_no_limit(alice, settings):
    settings.USER_MAX_DOCUMENTS = 0
    settings.USER_MAX_BYTES = 0
    for n in range(5):
        upload_document(alice, file_name=f"{n}.txt", data=note(n))
    assert Document.objects.filter(owner=alice).count() == 5


def test_uploads_by_one_owner_are_serialised_by_a_row_lock(alice, two_documents_each):
    # Two requests at once must not both fit under the quota: the check runs under a lock on
    # the owner's row, taken in the transaction that stores the document.
    with CaptureQueriesContext(connection) as queries:
        upload_document(alice, file_name="1.txt", data=note(1))
    sql = [query["sql"] for query in queries.captured_queries]
    lock = next(i for i, q in enumerate(sql) if "FOR UPDATE" in q and '"auth_user"' in q)
    insert = next(i for i, q in enumerate(sql) if q.startswith('INSERT INTO "documents_document"'))
    count = next(i for i, q in enumerate(sql) if "COUNT(" in q and '"documents_document"' in q)
    assert lock < count < insert


# -- the upload page, the API and the admin ------------------------------------------------------


def test_the_upload_page_shows_the_quota_as_a_form_error(alice, alice_client, two_documents_each):
    for n in (1, 2):
        assert alice_client.post(UPLOAD, {"file": txt(n), "visibility": "private"}).status_code == 302
    response = alice_client.post(UPLOAD, {"file": txt(3), "visibility": "private"})
    assert response.status_code == 400
    assert "alice already has 2 documents" in response.context["form"].errors["file"][0]
    assert "Delete some to upload more." in response.content.decode()
    assert Document.objects.filter(owner=alice).count() == 2


def test_the_api_answers_409_with_code_quota(alice, alice_token, one_kilobyte_each):
    assert Client().post(API, {"file": txt(1, 900)}, **bearer(alice_token)).status_code == 201
    response = Client().post(API, {"file": txt(2, 200)}, **bearer(alice_token))
    assert response.status_code == 409
    assert response.json() == {
        "error": "alice's documents take 900 bytes; this file (200 bytes) would take them past 1000 bytes, "
        "the most one person may keep. Delete some to upload more.",
        "code": "quota",
    }
    # The same bytes again are still a 200 duplicate.
    duplicate = Client().post(API, {"file": txt(1, 900)}, **bearer(alice_token))
    assert duplicate.status_code == 200
    assert duplicate.json()["duplicate"] is True


def test_the_admin_add_form_refuses_past_the_owners_quota(admin_client_, alice, two_documents_each):
    upload_document(alice, file_name="1.txt", data=note(1))
    upload_document(alice, file_name="2.txt", data=note(2))
    response = admin_client_.post(ADMIN_ADD, {"file": txt(3), "owner": alice.pk, "visibility": "private"})
    assert response.status_code == 200  # the form again, with the error
    assert "alice already has 2 documents" in response.content.decode()
    assert Document.objects.filter(owner=alice).count() == 2
    # A duplicate of what she has is no new document: the admin reports it as before.
    response = admin_client_.post(ADMIN_ADD, {"file": txt(1), "owner": alice.pk, "visibility": "private"}, follow=True)
    assert "already uploaded this file" in response.content.decode()
    assert Document.objects.filter(owner=alice).count() == 2
