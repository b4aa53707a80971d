"""The full-text statistics (documents/text_stats.py) stay equal to a live count for every reader
while documents are ingested, re-indexed, deleted, shared, unshared, regrouped and given away."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from documents import services
from documents.models import Chunk, Document, LexemeCount, Status, Visibility
from tests.conftest import make_user
from tests.factories import make_ready_document

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = "harbour ferry timetable lighthouse keeper storm"


def lexemes() -> list[str]:
    return LexemeCount.objects.frequencies(None, WORDS).lexemes


def assert_counts_are_live(*readers) -> None:
    """Each reader's kept figures equal counting their readable chunks now."""
    words = lexemes()
    for reader in readers:
        visible = Chunk.objects.visible_to(reader)
        live = visible.lexeme_frequencies(words)
        kept = LexemeCount.objects.frequencies(reader, WORDS)
        assert (kept.readable, kept.frequencies) == live, reader.username
    everything = Chunk.objects.filter(document__status=Status.READY)
    kept = LexemeCount.objects.frequencies(readers[0], WORDS)
    assert (kept.total, kept.matches) == everything.lexeme_frequencies(words)


@pytest.fixture
def people(db):
    harbour = Group.objects.create(name="harbour")
    alice, bob = make_user("alice-stats", groups=[harbour]), make_user("bob-stats")
    carol = make_user("carol-stats", groups=[harbour])
    admin = make_user("admin-stats", staff=True)
    return alice, bob, carol, admin, harbour


def make(owner, title, text, **kwargs) -> Document:
    return make_ready_document(owner, title, [("", text), ("", f"{title}: the storm closed the harbour.")], **kwargs)


def test_every_reader_gets_exactly_what_they_may_read(people):
    alice, bob, carol, admin, harbour = people
    make(alice, "Alice's notes", "The ferry timetable changes in winter.")
    make(bob, "Bob's log", "The lighthouse keeper saw the storm.", visibility=Visibility.SHARED)
    make(bob, "Bob's harbour memo", "The harbour ferry is late.", visibility=Visibility.GROUPS, groups=[harbour])
    make(carol, "Carol's draft", "Ferry ferry timetable.")

    assert_counts_are_live(alice, bob, carol, admin)
    # Her own two chunks, Bob's two shared with everyone, Bob's two shared with her group.
    assert LexemeCount.objects.frequencies(alice, WORDS).readable == 6


def test_visibility_owner_and_group_changes_move_the_counts(people):
    alice, bob, carol, admin, harbour = people
    memo = make(bob, "Bob's memo", "The harbour ferry timetable.", visibility=Visibility.GROUPS, groups=[harbour])
    assert_counts_are_live(alice, bob, carol, admin)

    memo.visibility = Visibility.PRIVATE
    memo.save()
    assert_counts_are_live(alice, bob, carol, admin)
    Document.objects.filter(pk=memo.pk).update(visibility=Visibility.SHARED)  # no signal sees this
    assert_counts_are_live(alice, bob, carol, admin)
    Document.objects.filter(pk=memo.pk).update(visibility=Visibility.GROUPS)
    memo.groups.set([])
    assert_counts_are_live(alice, bob, carol, admin)
    memo.groups.set([harbour])
    assert_counts_are_live(alice, bob, carol, admin)
    Document.objects.filter(pk=memo.pk).update(owner=carol)
    assert_counts_are_live(alice, bob, carol, admin)
    harbour.delete()
    assert_counts_are_live(alice, bob, carol, admin)


def test_only_ready_documents_count_and_deletion_takes_their_chunks_away(people):
    alice, bob, carol, admin, _ = people
    notes = make(alice, "Alice's notes", "The lighthouse keeper's ferry timetable.", visibility=Visibility.SHARED)
    make(bob, "Bob's log", "The storm.", visibility=Visibility.SHARED)

    services.start_ingestion(notes)  # pending again: not readable, not counted
    assert_counts_are_live(alice, bob, admin)
    assert LexemeCount.objects.frequencies(admin, WORDS).readable == 2
    Document.objects.filter(pk=notes.pk).update(status=Status.READY)
    assert_counts_are_live(alice, bob, admin)
    Chunk.objects.filter(document=notes, ordinal=0).delete()
    assert_counts_are_live(alice, bob, admin)
    services.delete_document(notes)
    assert_counts_are_live(alice, bob, admin)
    assert LexemeCount.objects.frequencies(admin, WORDS).readable == 2


def test_ingestion_reindex_and_deletion_through_the_worker_keep_the_counts(people, django_capture_on_commit_callbacks):
    alice, bob, carol, admin, harbour = people
    text = b"# Harbour\n\nThe ferry timetable is posted by the lighthouse keeper.\n\nA storm stops the ferry.\n"
    with django_capture_on_commit_callbacks(execute=True):
        document, _ = services.upload_document(
            alice, file_name="harbour.md", data=text, visibility=Visibility.GROUPS, groups=[harbour]
        )
    document.refresh_from_db()
    assert document.status == Status.READY
    assert_counts_are_live(alice, bob, carol, admin)
    with django_capture_on_commit_callbacks(execute=True):
        services.reindex_document(document)
    assert_counts_are_live(alice, bob, carol, admin)
    assert LexemeCount.objects.frequencies(carol, WORDS).readable == document.chunks.count()
    services.delete_document(document)
    assert_counts_are_live(alice, bob, carol, admin)


def test_a_chunk_edited_in_place_is_counted_as_it_reads_now(people):
    alice, *_ = people
    notes = make(alice, "Alice's notes", "The ferry timetable.")
    Chunk.objects.filter(document=notes, ordinal=0).update(text="The lighthouse keeper and the storm.")
    assert_counts_are_live(alice)


def test_statements_changing_many_documents_at_once_move_all_their_counts(people):
    """One UPDATE or DELETE of many documents (an ingestion run marking its batch ready, the
    admin's bulk actions) moves every one of them, summed per word before it is counted."""
    alice, bob, carol, admin, harbour = people
    batch = [make(owner, f"Note {n}", "The ferry timetable and the storm.") for n, owner in enumerate([alice, bob] * 3)]
    ids = [document.pk for document in batch]
    Document.objects.filter(pk__in=ids).update(status=Status.PENDING)
    assert LexemeCount.objects.frequencies(admin, WORDS).readable == 0
    Document.objects.filter(pk__in=ids).update(status=Status.READY)
    assert_counts_are_live(alice, bob, carol, admin)
    # Some change audience and some do not, in one statement; then groups for several at once.
    Document.objects.filter(pk__in=ids[:4]).update(visibility=Visibility.SHARED)
    assert_counts_are_live(alice, bob, carol, admin)
    Document.objects.filter(pk__in=ids).update(visibility=Visibility.GROUPS)
    Document.groups.through.objects.bulk_create(
        [Document.groups.through(document_id=pk, group_id=harbour.pk) for pk in ids[::2]]
    )
    assert_counts_are_live(alice, bob, carol, admin)
    Document.groups.through.objects.filter(document_id__in=ids[:3]).delete()
    assert_counts_are_live(alice, bob, carol, admin)
    Document.objects.filter(pk__in=ids[1:]).delete()
    assert_counts_are_live(alice, bob, carol, admin)
    assert LexemeCount.objects.frequencies(admin, WORDS).readable == 2
