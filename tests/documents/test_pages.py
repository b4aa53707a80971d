"""The documents pages: list with live status, upload, a document's chunks, re-index.

Uploads run the real ingestion (MiniLM) inline: the task is queued with
``transaction.on_commit`` and django-q2 runs in sync mode under ``make test``.
"""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from documents.models import Document, Status, Visibility
from tests.documents.web_helpers import GUIDE_MD, make_document, markdown_file

pytestmark = pytest.mark.django_db

UPLOAD = reverse("documents:upload")


def upload(client, file, **fields):
    return client.post(UPLOAD, {"file": file, "visibility": Visibility.PRIVATE, **fields})


def test_alice_uploads_markdown_and_sees_its_chunks_with_headings(
    alice, alice_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(alice_client, markdown_file(), title="Garden notes")
    document = Document.objects.get(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse("documents:detail", args=[document.public_id])

    page = alice_client.get(response["Location"])
    html = page.content.decode()
    document.refresh_from_db()
    assert document.status == Status.READY, document.error
    assert document.title == "Garden notes"
    assert "Uploaded “Garden notes”" in html
    assert '<span class="status ready">Ready</span>' in html
    assert "Gardening guide › Pests" in html
    assert "Aphids gather under leaves" in html
    chunks = page.context["chunks"]
    assert len(chunks) == document.chunks.count() > 0
    for chunk in chunks:
        assert f"{chunk.token_count} tokens" in html
        assert 0 < chunk.token_count <= 256


def test_uploading_the_same_file_again_says_so_and_opens_the_first_copy(
    alice, alice_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload(alice_client, markdown_file(), title="First copy")
        response = upload(alice_client, markdown_file("renamed.md"), title="Second copy")
    document = Document.objects.get(owner=alice)
    assert response["Location"] == reverse("documents:detail", args=[document.public_id])
    html = alice_client.get(response["Location"]).content.decode()
    assert "You already uploaded this file as “First copy”" in html
    assert Document.objects.filter(owner=alice).count() == 1


def test_the_upload_page_offers_only_the_users_own_groups(alice, alice_client, admin_client_):
    Group.objects.create(name="secret-club")
    html = alice_client.get(UPLOAD).content.decode()
    assert "team" in html
    assert "secret-club" not in html
    assert "secret-club" in admin_client_.get(UPLOAD).content.decode()


def test_sharing_with_a_group_she_is_not_in_is_refused(alice, alice_client):
    other = Group.objects.create(name="secret-club")
    response = upload(alice_client, markdown_file(), visibility=Visibility.GROUPS, groups=[other.pk])
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Document.objects.exists()


def test_group_visibility_without_a_group_is_refused(alice_client):
    response = upload(alice_client, markdown_file(), visibility=Visibility.GROUPS)
    assert response.status_code == 400
    assert "Choose at least one group" in response.content.decode()
    assert not Document.objects.exists()


def test_a_document_shared_with_her_group_is_readable_by_carol(
    alice, carol, team, alice_client, django_capture_on_commit_callbacks
):
    from tests.conftest import client_for

    with django_capture_on_commit_callbacks(execute=True):
        upload(alice_client, markdown_file(), visibility=Visibility.GROUPS, groups=[team.pk])
    document = Document.objects.get(owner=alice)
    assert list(document.groups.all()) == [team]
    page = client_for(carol).get(reverse("documents:detail", args=[document.public_id]))
    assert page.status_code == 200
    assert "Tomatoes need at least six hours" in page.content.decode()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.txt", b"", "The file is empty"),
        ("report.pdf", b"Quarterly numbers, typed as plain text.\n" * 5, "not a PDF"),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, "not supported"),
        ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 256, "not supported"),
    ],
)
def test_bad_files_get_a_form_error_and_store_nothing(alice_client, name, data, message):
    response = upload(alice_client, SimpleUploadedFile(name, data))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Document.objects.exists()


def test_a_zip_archive_gets_a_form_error(alice_client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    response = upload(alice_client, SimpleUploadedFile("notes.zip", buffer.getvalue()))
    assert response.status_code == 400
    assert "ZIP archive" in response.content.decode()
    assert not Document.objects.exists()


@override_settings(UPLOAD_MAX_BYTES=100)
def test_a_file_over_the_limit_gets_a_friendly_form_error(alice_client):
    response = upload(alice_client, markdown_file())
    assert response.status_code == 400
    html = response.content.decode()
    assert "the largest file you can upload is 100 bytes" in html
    assert not Document.objects.exists()


def test_a_file_name_with_folders_and_control_characters_is_stored_clean(
    alice, alice_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload(alice_client, SimpleUploadedFile("..\\..\\evil\x07\x1bname.md", GUIDE_MD))
    document = Document.objects.get(owner=alice)
    assert document.original_name == "evilname.md"


def test_the_list_polls_a_busy_document_and_stops_once_ready(alice, alice_client):
    busy = make_document(alice, "still working", status=Status.PROCESSING, chunks=0)
    busy.progress_total = 10
    busy.progress_done = 4
    busy.save(update_fields=["progress_total", "progress_done"])
    ready = make_document(alice, "all done")

    html = alice_client.get(reverse("documents:list")).content.decode()
    status_url = reverse("documents:status", args=[busy.public_id])
    assert f'hx-get="{status_url}"' in html
    assert 'hx-trigger="every 2s"' in html
    assert '<progress max="100" value="40">' in html
    assert "4 of 10 chunks" in html
    assert reverse("documents:status", args=[ready.public_id]) not in html

    partial = alice_client.get(status_url)
    assert 'hx-trigger="every 2s"' in partial.content.decode()
    busy.status = Status.READY
    busy.progress_done = 10
    busy.save(update_fields=["status", "progress_done"])
    partial = alice_client.get(status_url).content.decode()
    assert "hx-trigger" not in partial
    assert "Ready" in partial


def test_the_document_page_reloads_itself_when_ingestion_finishes(alice, alice_client):
    document = make_document(alice, "queued", status=Status.PENDING, chunks=0)
    detail = alice_client.get(reverse("documents:detail", args=[document.public_id])).content.decode()
    assert "?reload=1" in detail
    status_url = reverse("documents:status", args=[document.public_id]) + "?reload=1"
    assert "HX-Refresh" not in alice_client.get(status_url)
    document.status = Status.FAILED
    document.error = "No text found — scanned PDF?"
    document.save(update_fields=["status", "error"])
    response = alice_client.get(status_url)
    assert response["HX-Refresh"] == "true"
    assert "No text found — scanned PDF?" in response.content.decode()


def test_a_failed_document_shows_its_error_in_the_list(alice, alice_client):
    document = make_document(alice, "scan", status=Status.FAILED, chunks=0)
    document.error = "No text found — scanned PDF?"
    document.save(update_fields=["error"])
    html = alice_client.get(reverse("documents:list")).content.decode()
    assert '<span class="status failed">Failed</span>' in html
    assert "No text found — scanned PDF?" in html


def test_the_list_marks_own_documents_and_names_other_owners(alice, bob, alice_client):
    make_document(alice, "mine")
    make_document(bob, "bobs notes", visibility=Visibility.SHARED)
    html = alice_client.get(reverse("documents:list")).content.decode()
    assert '<span class="badge mine">you</span>' in html
    assert '<span class="badge">bob</span>' in html


def test_the_list_page_query_count_does_not_grow_with_documents(
    alice, bob, alice_client, django_assert_max_num_queries
):
    for i in range(3):
        make_document(alice, f"doc {i}")
    with django_assert_max_num_queries(8) as few:
        alice_client.get(reverse("documents:list"))
    for i in range(3, 15):
        make_document(bob, f"shared {i}", visibility=Visibility.SHARED)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = alice_client.get(reverse("documents:list"))
    assert len(response.context["documents"]) == 15


def test_the_document_page_pages_through_chunks(alice, alice_client):
    document = make_document(alice, "long", chunks=30)
    url = reverse("documents:detail", args=[document.public_id])
    first = alice_client.get(url)
    assert [c.ordinal for c in first.context["chunks"]] == list(range(25))
    assert "Page 1 of 2" in first.content.decode()
    assert "page 25" in first.content.decode()  # chunk locations are shown
    second = alice_client.get(url, {"page": 2})
    assert [c.ordinal for c in second.context["chunks"]] == list(range(25, 30))
    assert alice_client.get(url, {"page": "nonsense"}).status_code == 200


def test_the_owner_reindexes_and_ends_with_one_full_set_of_chunks(
    alice, alice_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload(alice_client, markdown_file())
    document = Document.objects.get(owner=alice)
    before = list(document.chunks.order_by("ordinal").values_list("ordinal", "text"))
    assert before
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(reverse("documents:reindex", args=[document.public_id]), follow=True)
    assert "Re-indexing" in response.content.decode()
    document.refresh_from_db()
    assert document.status == Status.READY
    assert list(document.chunks.order_by("ordinal").values_list("ordinal", "text")) == before


def test_reindex_and_delete_refuse_get_requests_that_would_change_things(alice, alice_client):
    document = make_document(alice, "keep me")
    assert alice_client.get(reverse("documents:reindex", args=[document.public_id])).status_code == 405
    assert Document.objects.filter(pk=document.pk).exists()


def detail_url(document, **params) -> str:
    url = reverse("documents:detail", args=[document.public_id])
    return url + ("?" + urlencode(params) if params else "")


def test_a_citation_link_opens_the_page_that_holds_its_chunk(alice, alice_client):
    document = make_document(alice, "long", chunks=60)
    response = alice_client.get(detail_url(document, chunk=27))
    assert [c.ordinal for c in response.context["chunks"]] == list(range(25, 50))
    html = response.content.decode()
    assert "Page 2 of 3" in html
    assert '<article class="chunk target" id="chunk-27" aria-current="location">' in html
    assert html.count('class="chunk target"') == 1
    # Without ?chunk the document opens on its first page, nothing singled out.
    first = alice_client.get(detail_url(document))
    assert [c.ordinal for c in first.context["chunks"]] == list(range(25))
    assert "target" not in first.content.decode()


def test_the_cited_sentence_is_marked_and_the_passage_escaped(alice, alice_client):
    document = make_document(alice, "marked", chunks=3)
    # Offsets count code points: the emoji before the sentence is one, not two UTF-16 units.
    text = "🌊 <b>Tides</b> turn twice a day. The harbour gate opens at 06:40 & closes at dusk."
    start = text.index("The harbour")
    document.chunks.filter(ordinal=1).update(text=text)
    html = alice_client.get(detail_url(document, chunk=1, hl=f"{start}-{len(text)}")).content.decode()
    assert "<mark>The harbour gate opens at 06:40 &amp; closes at dusk.</mark>" in html
    assert "🌊 &lt;b&gt;Tides&lt;/b&gt; turn twice a day. <mark>" in html
    assert "<b>Tides" not in html
    assert html.count("<mark>") == 1  # only the cited chunk is marked


def test_several_highlight_spans_are_marked_in_order(alice, alice_client):
    document = make_document(alice, "two spans", chunks=1)
    document.chunks.update(text="One. Two. Three.")
    html = alice_client.get(detail_url(document, chunk=0, hl="10-16,0-4")).content.decode()
    assert "<pre><mark>One.</mark> Two. <mark>Three.</mark></pre>" in html


@pytest.mark.parametrize(
    "params",
    [
        {"chunk": "abc", "hl": "0-4"},
        {"chunk": "-1", "hl": "0-4"},
        {"chunk": "999", "hl": "0-4"},
        {"chunk": "1.5"},
        {"chunk": "1", "hl": "nonsense"},
        {"chunk": "1", "hl": "4-2"},
        {"chunk": "1", "hl": "0-9999"},
        {"chunk": "1", "hl": "-3-4"},
        {"chunk": "1", "hl": "3-3"},
        {"chunk": "1", "hl": "٣-٤"},  # Arabic-Indic digits are not offsets
        {"chunk": "99999999999999999999", "hl": "0-4"},
    ],
)
def test_malformed_or_out_of_range_chunk_and_highlight_are_ignored(alice, alice_client, params):
    document = make_document(alice, "robust", chunks=30)
    response = alice_client.get(detail_url(document, **params))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<mark>" not in html
    assert "Passage 1 of robust." in html  # the chunk text is still shown whole
