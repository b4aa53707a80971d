"""The golden set agrees with itself: the facts it expects are in the documents the product reads,
its unanswerable questions have no answer there, and each planted wrong sentence is a true one
with exactly one fact changed."""

from __future__ import annotations

import pytest

from bench import golden
from bench.answers import normalize, states_fact
from documents import extraction, filetypes

# Words that would answer an "unanswerable" question; none may appear in any document.
ABSENT = {
    "u1": "Bellhaven",
    "u2": "WX-9",
    "u3": "parking",
    "u4": "Q1",
    "u5": "parental",
    "u6": "croissant",
    "u7": "parking",
    "u8": "mercury",
    "u9": "World Cup",
    "u10": "Zorvex",
}


@pytest.fixture(scope="module")
def extracted() -> dict[str, str]:
    """Each document's text as the product extracts it from the rendered file."""
    texts = {}
    for document in golden.DOCUMENTS:
        name, data = golden.render(document)
        sections = extraction.extract(data, filetypes.detect_mime_type(name, data))
        texts[document.key] = "\n\n".join(section.text for section in sections)
    return texts


def corpus(extracted: dict[str, str]) -> str:
    return "\n\n".join(extracted.values())


def answerable() -> list[golden.Question]:
    pairs = [question for pair in golden.FOLLOW_UPS for question in (pair.first, pair.follow_up)]
    return list(golden.QUESTIONS) + pairs


def test_the_set_is_as_large_as_the_issue_asks():
    sizes = golden.sizes()
    assert 6 <= sizes["documents"] <= 8
    assert sizes["answerable_questions"] >= 40
    assert sizes["follow_up_pairs"] >= 8
    assert sizes["unanswerable_questions"] >= 8
    assert sizes["planted_wrong_sentences"] >= 20


def test_documents_come_in_every_supported_format_and_render_the_same_bytes_twice():
    types = set()
    for document in golden.DOCUMENTS:
        name, data = golden.render(document)
        assert golden.render(document)[1] == data  # re-uploads are duplicates, not new documents
        types.add(filetypes.detect_mime_type(name, data))
    assert types == set(filetypes.SUPPORTED_TYPES)


def test_question_ids_are_unique_and_name_real_documents():
    ids = [q.id for q in golden.QUESTIONS + golden.UNANSWERABLE] + [
        q.id for pair in golden.FOLLOW_UPS for q in (pair.first, pair.follow_up)
    ]
    assert len(ids) == len(set(ids))
    for question in answerable():
        assert question.document in golden.BY_KEY, question.id
        assert question.facts, question.id


def test_every_expected_fact_is_in_the_text_extracted_from_its_document(extracted):
    for question in answerable():
        for fact in question.facts:
            # The first spelling is the document's own: the evidence sentence quotes it.
            assert states_fact(extracted[question.document], fact[:1]), (question.id, fact[0])


def test_expected_facts_are_not_stated_by_the_question_itself():
    for question in answerable():
        assert not any(states_fact(question.text, fact) for fact in question.facts), question.id


def test_a_follow_up_stays_in_its_first_questions_document_and_names_a_passage_in_it(extracted):
    for pair in golden.FOLLOW_UPS:
        assert pair.first.document == pair.follow_up.document, pair.id
        assert normalize(pair.passage) in normalize(extracted[pair.follow_up.document]), pair.id
        assert any(states_fact(pair.passage, fact) for fact in pair.follow_up.facts), pair.id


def test_unanswerable_questions_have_no_answer_in_any_document(extracted):
    text = normalize(corpus(extracted))
    assert {question.id for question in golden.UNANSWERABLE} <= set(ABSENT)
    for question in golden.UNANSWERABLE:
        assert not question.answerable
        assert normalize(ABSENT[question.id]) not in text, question.id


def test_each_claim_is_true_in_its_document(extracted):
    questions = golden.all_questions()
    for claim in golden.CLAIMS:
        text = extracted[questions[claim.question].document]
        for alteration in claim.alterations:
            assert alteration.old in claim.sentence, (claim.question, alteration.old)
            assert states_fact(text, (alteration.old,)), (claim.question, alteration.old)


def test_each_planted_wrong_sentence_changes_exactly_one_fact_to_one_the_document_does_not_state(extracted):
    everything = corpus(extracted)
    true_sentences = {claim.sentence: claim for claim in golden.CLAIMS}
    planted = golden.planted_sentences()
    wrong = [sentence for sentence in planted if sentence.wrong]
    assert len(wrong) == sum(len(claim.alterations) for claim in golden.CLAIMS)
    for claim in golden.CLAIMS:
        for alteration in claim.alterations:
            altered = claim.sentence.replace(alteration.old, alteration.new, 1)
            assert altered != claim.sentence and altered not in true_sentences
            assert alteration.new not in claim.sentence
            if alteration.kind == "invented":  # a value the knowledge base does not hold at all
                assert not states_fact(everything, (alteration.new,)), alteration.new
            else:  # a real value of the knowledge base, about something else
                assert states_fact(everything, (alteration.new,)), alteration.new
        for paraphrase in claim.paraphrases:
            assert paraphrase != claim.sentence
            assert all(alteration.old in paraphrase for alteration in claim.alterations), paraphrase
