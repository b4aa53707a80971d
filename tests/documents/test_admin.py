"""Django admin for documents: list, inspect chunks, upload, re-index, delete."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from documents.admin import INLINE_CHUNKS
from documents.models import Chunk, Document, Status, Visibility
from tests.documents.web_helpers import make_document, markdown_file

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:documents_document_changelist")
ADD = reverse("admin:documents_document_add")


def change_url(document: Document) -> str:
    return reverse("admin:documents_document_change", args=[document.pk])


def test_the_changelist_shows_documents_with_filters_and_search(admin_client_, alice, bob):
    make_document(alice, "alice handbook", chunks=3)
    make_document(bob, "bob notes", status=Status.FAILED, chunks=0)
    response = admin_client_.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "alice handbook" in html and "bob notes" in html
    for heading in ("By status", "By visibility", "By owner"):
        assert heading in html
    found = admin_client_.get(CHANGELIST, {"q": "bob"}).content.decode()
    assert "bob notes" in found and "alice handbook" not in found
    failed = admin_client_.get(CHANGELIST, {"status__exact": "failed"}).content.decode()
    assert "bob notes" in failed and "alice handbook" not in failed


def test_the_change_page_shows_the_error_and_read_only_chunks(admin_client_, alice):
    document = make_document(alice, "manual", chunks=3)
    document.error = "Something went wrong on page 2"
    document.save(update_fields=["error"])
    html = admin_client_.get(change_url(document)).content.decode()
    assert "Something went wrong on page 2" in html
    assert 'name="error"' not in html  # read-only
    assert "Passage 2 of manual." in html
    assert "page 3" in html
    assert 'name="chunks-0-text"' not in html
    assert 'name="chunks-MAX_NUM_FORMS" value="0"' in html  # no adding
    assert 'name="chunks-0-DELETE"' not in html


def test_the_chunk_inline_is_limited_for_long_documents(admin_client_, alice):
    document = make_document(alice, "long", chunks=INLINE_CHUNKS + 5)
    response = admin_client_.get(change_url(document))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Passage {INLINE_CHUNKS - 1} of long." in html
    assert f"Passage {INLINE_CHUNKS} of long." not in html


def test_admins_can_change_title_and_visibility_but_not_the_file(admin_client_, alice, team):
    document = make_document(alice, "draft")
    page = admin_client_.get(change_url(document))
    html = page.content.decode()
    assert 'name="sha256"' not in html and 'name="data"' not in html
    # What the browser sends back for the (read-only) chunk inline.
    formset = page.context["inline_admin_formsets"][0].formset
    management = {f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()}
    response = admin_client_.post(
        change_url(document), {"title": "Final", "visibility": Visibility.GROUPS, "groups": [team.pk], **management}
    )
    assert response.status_code == 302
    document.refresh_from_db()
    assert document.title == "Final"
    assert list(document.groups.all()) == [team]
    assert document.chunks.count() == 2


def test_the_add_form_uploads_a_file_for_the_admin_by_default(
    admin_client_, admin_user, django_capture_on_commit_callbacks
):
    page = admin_client_.get(ADD)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'type="file"' in html
    assert 'name="data"' not in html
    assert page.context["adminform"].form.initial["owner"] == admin_user.pk

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(
            ADD,
            {"file": markdown_file(), "title": "", "owner": admin_user.pk, "visibility": Visibility.SHARED},
        )
    assert response.status_code == 302
    document = Document.objects.get()
    assert document.owner == admin_user
    assert document.visibility == Visibility.SHARED
    assert document.title  # taken from the file when left blank
    assert document.status == Status.READY, document.error
    assert document.chunks.exists()


def test_the_add_form_uploads_for_another_owner_and_reports_duplicates(
    admin_client_, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(
            ADD, {"file": markdown_file(), "title": "For alice", "owner": alice.pk, "visibility": "private"}
        )
        response = admin_client_.post(
            ADD, {"file": markdown_file(), "title": "Again", "owner": alice.pk, "visibility": "private"}, follow=True
        )
    assert Document.objects.filter(owner=alice).count() == 1
    assert "already uploaded this file as “For alice”" in response.content.decode()


def test_the_add_form_refuses_a_bad_file_and_stores_nothing(admin_client_, admin_user):
    response = admin_client_.post(
        ADD,
        {"file": SimpleUploadedFile("scan.pdf", b"not really a pdf"), "owner": admin_user.pk, "visibility": "private"},
    )
    assert response.status_code == 200
    assert "not a PDF" in response.content.decode()
    response = admin_client_.post(
        ADD, {"file": SimpleUploadedFile("empty.md", b""), "owner": admin_user.pk, "visibility": "private"}
    )
    assert "The file is empty" in response.content.decode()
    assert not Document.objects.exists()


def test_the_reindex_action_rebuilds_the_selected_documents(admin_client_, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(ADD, {"file": markdown_file(), "title": "Guide", "owner": alice.pk, "visibility": "private"})
    document = Document.objects.get()
    # Damage the chunk set; re-indexing must restore exactly one complete set.
    document.chunks.filter(ordinal__gt=0).delete()
    page = admin_client_.get(CHANGELIST).content.decode()
    assert "Re-index selected documents" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(
            CHANGELIST, {"action": "reindex_selected", ACTION_CHECKBOX_NAME: [document.pk]}, follow=True
        )
    assert "Queued 1 document(s) for re-indexing" in response.content.decode()
    document.refresh_from_db()
    assert document.status == Status.READY, document.error
    ordinals = list(document.chunks.order_by("ordinal").values_list("ordinal", flat=True))
    assert len(ordinals) > 1 and ordinals == list(range(len(ordinals)))


def test_the_delete_action_asks_then_removes_documents_and_chunks(admin_client_, alice, bob):
    doomed = make_document(alice, "doomed")
    kept = make_document(bob, "kept")
    confirm = admin_client_.post(CHANGELIST, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [doomed.pk]})
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Are you sure" in html
    assert "Document: doomed (2 chunks)" in html
    admin_client_.post(CHANGELIST, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [doomed.pk], "post": "yes"})
    assert not Document.objects.filter(pk=doomed.pk).exists()
    assert not Chunk.objects.filter(document_id=doomed.pk).exists()
    assert Document.objects.filter(pk=kept.pk).exists()


def test_non_staff_cannot_open_the_documents_admin(alice_client):
    response = alice_client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
