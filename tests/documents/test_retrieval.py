"""Hybrid retrieval with the real MiniLM model on the real Postgres + pgvector."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from django.db import connection
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext, override_settings

from documents import retrieval
from documents.models import Chunk, Document, Status, Visibility
from tests.factories import make_ready_document

# Passages chosen so that each search mode alone misses something the other finds:
# - error codes that differ only in the order of their digits are exact, rare words for full
#   text but nearly the same vector for an embedding;
# - a paraphrased question shares no word with the passage that answers it.
# ("Workers get a badge..." is a lexical trap for questions about annual leave.)
PASSAGES = {
    "codes": [
        "Error QX-7731 means the license server rejected the activation request.",
        "Error QX-7713 means the license file has expired and must be renewed.",
        "Error QX-1377 means the activation server could not be reached.",
        "Error QX-3177 means the license seat count was exceeded.",
    ],
    "filters": [
        "Replacement filter FX-2040 fits the Aqualine 300 pump.",
        "Replacement filter FX-2004 fits the Aqualine 500 pump.",
        "Replacement filter FX-4020 fits the Aqualine 700 pump.",
        "Replacement filter FX-4002 fits the Aqualine 900 pump.",
    ],
    "handbook": [
        "Employees accrue twenty-five vacation days per year, prorated for part-time staff.",
        "The cafeteria serves vegetarian lunch on Tuesdays and Thursdays.",
        "The parking garage closes at midnight; overnight parking requires a permit.",
        "Workers get a badge on their first day; annual badge photos are taken in June.",
        "Backups run nightly at 02:00 and are kept for thirty days.",
        "Quarterly reports are due on the fifth business day after the quarter ends.",
    ],
}

QUERIES = [
    ("What does error QX-7731 mean?", "QX-7731"),
    ("Which error says the seats were exceeded, QX-3177?", "QX-3177"),
    ("Which pump does filter FX-4020 fit?", "FX-4020"),
    ("QX-1377", "QX-1377"),
    ("FX-2004", "FX-2004"),
    ("Where can I eat meat-free food at midday?", "vegetarian lunch"),
    ("How long are backups kept?", "thirty days"),
    ("When is the deadline for the quarterly report?", "fifth business day"),
]


def make_document(owner, title: str, texts: list[str], *, visibility=Visibility.PRIVATE, groups=()) -> Document:
    passages = [(f"paragraph {i + 1}", text) for i, text in enumerate(texts)]
    return make_ready_document(owner, title, passages, visibility=visibility, groups=groups)


@pytest.fixture
def knowledge_base(alice):
    return {name: make_document(alice, name, texts) for name, texts in PASSAGES.items()}


def _reciprocal_rank(hits, expected: str) -> float:
    for rank, hit in enumerate(hits, start=1):
        if expected in hit.text:
            return 1.0 / rank
    return 0.0


@pytest.mark.django_db
def test_hybrid_ranks_better_than_dense_or_full_text_alone(alice, knowledge_base):
    scores = {}
    for mode in ("dense", "text", "hybrid"):
        ranks = [
            _reciprocal_rank(retrieval.search(alice, q, 3, mode=mode, apply_floor=False), expected)
            for q, expected in QUERIES
        ]
        scores[mode] = sum(ranks) / len(ranks)
    assert scores["hybrid"] > scores["dense"], scores
    assert scores["hybrid"] > scores["text"], scores


@pytest.mark.django_db
def test_a_rare_exact_word_outranks_a_near_duplicate_that_shares_only_common_words(alice, knowledge_base):
    dense = retrieval.search(alice, "What does error QX-7731 mean?", 3, mode="dense", apply_floor=False)
    hybrid = retrieval.search(alice, "What does error QX-7731 mean?", 3)
    assert "QX-7731" not in dense[0].text  # the embedding alone confuses the permuted codes
    assert "QX-7731" in hybrid[0].text


@pytest.mark.django_db
def test_full_text_scores_rare_words_above_common_ones(alice, knowledge_base):
    hits = retrieval.search(alice, "error QX-3177", 4, mode="text", apply_floor=False)
    assert "QX-3177" in hits[0].text
    assert len(hits) == 4  # every QX passage shares "error": they follow, lower
    assert hits[0].score > hits[1].score


@pytest.mark.django_db
def test_search_finds_the_passage_that_answers_a_paraphrased_question(alice, knowledge_base):
    hits = retrieval.search(alice, "Where can I eat meat-free food at midday?", 3)
    assert "vegetarian lunch" in hits[0].text
    assert hits[0].title == "handbook"
    assert hits[0].location == "paragraph 2"
    assert hits[0].document_id == knowledge_base["handbook"].public_id


@pytest.mark.django_db
def test_a_question_nothing_matches_returns_no_passages(alice, knowledge_base):
    assert retrieval.search(alice, "Who painted the Mona Lisa in Renaissance Florence?", 5) == []


@pytest.mark.django_db
def test_blank_query_returns_nothing(alice, knowledge_base):
    assert retrieval.search(alice, "   ", 5) == []


@pytest.mark.django_db
def test_bob_never_retrieves_alices_private_passages(bob, knowledge_base):
    assert retrieval.search(bob, "What does error QX-7731 mean?", 5, apply_floor=False) == []


@pytest.mark.django_db
def test_group_members_retrieve_documents_shared_with_their_group(alice, carol, team):
    make_document(
        alice, "team notes", ["The team offsite is in Lisbon in May."], visibility=Visibility.GROUPS, groups=[team]
    )
    hits = retrieval.search(carol, "Where is the team offsite?", 3)
    assert [h.title for h in hits] == ["team notes"]


@pytest.mark.django_db
def test_documents_that_are_not_ready_are_not_searched(alice, knowledge_base):
    Document.objects.filter(pk=knowledge_base["codes"].pk).update(status=Status.PROCESSING, lease_expires=Now())
    hits = retrieval.search(alice, "What does error QX-7731 mean?", 5, apply_floor=False)
    assert all(h.title != "codes" for h in hits)


def _random_unit_vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.django_db
@override_settings(RETRIEVAL_EXACT_SCAN_MAX=0, RETRIEVAL_EF_SEARCH=40)
def test_a_user_who_can_read_one_percent_of_chunks_still_gets_k_results(alice, bob):
    """2,000 synthetic chunks, of which bob may read 20 (1 %), scattered among alice's.

    With exact scans disabled the approximate index is used first; it is filtered after the
    scan, so without compensation it would return only ~1 % of its candidates."""
    vectors = _random_unit_vectors(2000, seed=7)
    owners = [bob if i % 100 == 0 else alice for i in range(2000)]
    docs = {}
    for user in (alice, bob):
        docs[user.pk] = Document.objects.create(
            owner=user,
            title=f"synthetic {user}",
            original_name="s.txt",
            mime_type="text/plain",
            size=1,
            sha256=hashlib.sha256(user.username.encode()).hexdigest(),
            status=Status.READY,
        )
    Chunk.objects.bulk_create(
        Chunk(document=docs[owner.pk], ordinal=i, text=f"synthetic chunk {i}", token_count=5, embedding=vector)
        for i, (owner, vector) in enumerate(zip(owners, vectors, strict=True))
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_chunk")
    query_vector = _random_unit_vectors(1, seed=99)[0]
    visible = Chunk.objects.visible_to(bob)
    found = retrieval.dense(visible, query_vector, 10)
    assert len(found) == 10
    assert {c.document_id for c in found} == {docs[bob.pk].pk}
    exact = sorted(
        (
            (float(1 - np.dot(v, query_vector)), i)
            for i, (o, v) in enumerate(zip(owners, vectors, strict=True))
            if o == bob
        ),
    )[:10]
    assert [c.ordinal for c in found] == [i for _, i in exact]


@pytest.mark.django_db
def test_search_runs_a_bounded_number_of_queries(alice, knowledge_base):
    retrieval.search(alice, "warm up the model", 3)
    with CaptureQueriesContext(connection) as queries:
        retrieval.search(alice, "How long are backups kept?", 5)
    # lexemes, word statistics, [savepoint, SET LOCAL ef_search, dense, release], full-text
    # scores, the best rows: a fixed number, however many hits (their documents come in the
    # same queries).
    assert len(queries) <= 9, [q["sql"][:80] for q in queries]
    # Nothing counts chunks per query: the word statistics are kept (documents.text_stats).
    counting = [q["sql"] for q in queries if "documents_chunk" in q["sql"] and "COUNT(" in q["sql"].upper()]
    assert counting == []


@pytest.mark.django_db
def test_full_text_candidates_are_the_rarest_words_chunks_within_the_row_budget(alice, knowledge_base, settings):
    question = "Which error says the license seat count was exceeded?"
    assert len(retrieval.search(alice, question, 10, mode="text", apply_floor=False)) >= 4  # "error", "license"...
    settings.RETRIEVAL_TEXT_MAX_ROWS = 2  # "exceeded" and "seat" are in one chunk each; "error" in four

    hits = retrieval.search(alice, question, 10, mode="text", apply_floor=False)

    assert [hit.text for hit in hits] == [PASSAGES["codes"][3]]
    settings.RETRIEVAL_TEXT_MAX_ROWS = 1  # the rarest word alone still fits
    assert [hit.text for hit in retrieval.search(alice, question, 10, mode="text", apply_floor=False)] == [
        PASSAGES["codes"][3]
    ]


@pytest.mark.django_db
def test_search_api_returns_visible_chunks_with_scores(alice_token, knowledge_base):
    from django.test import Client

    response = Client().get(
        "/api/v1/search", {"q": "How long are backups kept?", "k": 2}, HTTP_AUTHORIZATION=f"Bearer {alice_token}"
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert 1 <= len(results) <= 2
    first = results[0]
    assert "thirty days" in first["text"]
    assert first["document"] == str(knowledge_base["handbook"].public_id)
    assert set(first) >= {"document", "title", "location", "text", "score"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 400),
        ({"q": "x", "k": "ten"}, 400),
        ({"q": "x", "k": 0}, 400),
        ({"q": "x", "k": 51}, 400),
        ({"q": "x" * 2001}, 400),
    ],
)
def test_search_api_rejects_bad_parameters(alice_token, params, status):
    from django.test import Client

    response = Client().get("/api/v1/search", params, HTTP_AUTHORIZATION=f"Bearer {alice_token}")
    assert response.status_code == status
    assert "error" in response.json()


@pytest.mark.django_db
def test_search_api_requires_authentication():
    from django.test import Client

    assert Client().get("/api/v1/search", {"q": "anything"}).status_code == 401
    wrong = Client().get("/api/v1/search", {"q": "anything"}, HTTP_AUTHORIZATION="Bearer kb_wrong")
    assert wrong.status_code == 401


@pytest.mark.django_db
def test_listing_a_readers_documents_reads_the_same_chunks(alice, bob, carol, team, knowledge_base):
    make_document(bob, "bob's shared", ["Shared with everyone."], visibility=Visibility.SHARED)
    make_document(bob, "bob's for the team", ["For the team."], visibility=Visibility.GROUPS, groups=[team])
    make_document(bob, "bob's own", ["Private to Bob."])
    for reader in (alice, bob, carol):
        listed = set(Chunk.objects.visible_to(reader, listed=True).values_list("pk", flat=True))
        assert listed == set(Chunk.objects.visible_to(reader).values_list("pk", flat=True)), reader.username
