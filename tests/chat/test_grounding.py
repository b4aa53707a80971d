"""The grounding check, with the real MiniLM embeddings: numbers, codes, names, paraphrase."""

from __future__ import annotations

import pytest

from chat import evidence, grounding

SOURCES = [
    (
        1,
        "The Zorblax 3000 coffee machine must be descaled every 40 days. Descaling uses the blue "
        "Zorblax tablets and takes about twelve minutes.",
    ),
    (2, "The Zorblax 3000 warranty lasts three years and covers the pump and the heating element."),
    (3, "The access code for the Zerelda vault is HARBOR999CB7. Only the night manager, Ilse Brandt, may open it."),
]


def verdicts(answer: str) -> list[tuple[bool, list[int]]]:
    return [(s["supported"], s["sources"]) for s in grounding.check(answer, SOURCES).sentences]


@pytest.mark.parametrize(
    ("sentence", "sources"),
    [
        ("The machine must be descaled every 40 days.", [1]),
        ("You should descale it roughly every forty days.", [1]),  # number word, paraphrase
        ("Descaling takes about 12 minutes and uses blue tablets.", [1]),
        ("The warranty lasts 3 years.", [2]),
        ("The access code is HARBOR999CB7.", [3]),
        ("Ilse Brandt may open the vault.", [3]),
    ],
)
def test_sentences_the_sources_state_are_supported_by_them(sentence, sources):
    assert verdicts(sentence) == [(True, sources)]


@pytest.mark.parametrize(
    "sentence",
    [
        "The machine must be descaled every 30 days.",  # wrong number
        "The warranty lasts five years.",  # wrong number word
        "The access code for the Zerelda vault is 4401.",  # wrong code
        "Peter Brandt may open the vault.",  # wrong name
        "Mercury boils at 101.0 Celsius.",  # nothing of the kind in the sources
        "The Zorblax is made in Switzerland.",
    ],
)
def test_sentences_with_a_wrong_or_missing_fact_are_unsupported(sentence):
    assert verdicts(sentence) == [(False, [])]


def test_an_address_the_sources_do_not_give_is_unsupported_though_its_words_occur():
    sources = [(1, "Questions about anything here go to the people team at people@brightwater.example.")]
    checked = grounding.check("Ask the people team at person@brightwater.example [1].", sources)
    assert [s["supported"] for s in checked.sentences] == [False]
    checked = grounding.check("Ask the people team at people@brightwater.example [1].", sources)
    assert [s["supported"] for s in checked.sentences] == [True]


def test_facts_must_all_occur_in_one_source():
    # 40 days is in source 1, HARBOR999CB7 in source 3: no single source says both.
    assert verdicts("The code HARBOR999CB7 must be changed every 40 days.") == [(False, [])]


def test_the_not_found_answer_and_empty_phrases_need_no_source():
    assert verdicts("I could not find this in the knowledge base. Sure.") == [(True, []), (True, [])]


def test_supported_sentences_citing_nothing_get_their_citation_and_others_are_left_alone():
    answer = "Descale it every 40 days. The warranty lasts three years [2]. It is made in Peru!"
    checked = grounding.check(answer, SOURCES)
    assert checked.content == "Descale it every 40 days [1]. The warranty lasts three years [2]. It is made in Peru!"
    assert [s["text"] for s in checked.sentences] == [
        "Descale it every 40 days [1].",
        "The warranty lasts three years [2].",
        "It is made in Peru!",
    ]
    assert checked.unsupported == 1


def test_an_answer_without_sentences_checks_nothing():
    assert grounding.check("", SOURCES).sentences == []
    assert grounding.check("   ", SOURCES).content == "   "


def test_a_value_the_sources_give_for_something_else_is_unsupported():
    sources = [
        (
            1,
            "The original budget of 44.9 million euros was raised in March. "
            "The revised budget of the project is 48.6 million euros.",
        )
    ]
    check = grounding.check("The revised budget of the project is 44.9 million euros.", sources)
    assert check.sentences == [
        {"text": "The revised budget of the project is 44.9 million euros.", "supported": False, "sources": []}
    ]
    assert grounding.check("The revised budget is 48.6 million euros.", sources).sentences[0]["supported"]


def test_a_name_in_the_sources_title_counts_and_a_sentence_referring_back_keeps_its_subject():
    sources = [
        (
            1,
            "Above a cut-out wind speed of 27 m/s the rotor stops. The Zerelda vault holds fuel cards. "
            "Its access code is HARBOR999CB7.",
            "Windmere WX-7: Technical Specification",
        )
    ]
    assert verdicts_for("The Zerelda vault's access code is HARBOR999CB7.", sources) == [(True, [1])]
    assert verdicts_for("The rotor of the WX-7 stops above 27 m/s.", sources) == [(True, [1])]


def verdicts_for(answer: str, sources) -> list[tuple[bool, list[int]]]:
    return [(s["supported"], s["sources"]) for s in grounding.check(answer, sources).sentences]


REMOTE = [
    (1, "Employees may work remotely up to three days per week. Remote work needs a secure laptop."),
    (2, "Laptops are replaced every 4 years. Each employee gets 1 monitor."),
]
REMOTE_QUESTION = "How many days per week may employees work remotely?"
REMOTE_EVIDENCE = ["Employees may work remotely up to three days per week."]


def test_an_answer_whose_value_is_not_the_evidences_is_unsupported_though_a_source_holds_it():
    # "1" occurs in a source, so rules 1–3 alone accept the bare answer.
    assert grounding.check("The answer is: 1 [1].", REMOTE).sentences[0]["supported"]
    checked = grounding.check("The answer is: 1 [1].", REMOTE, question=REMOTE_QUESTION, evidence_texts=REMOTE_EVIDENCE)
    assert not checked.sentences[0]["supported"]
    right = grounding.check(
        "Employees may work remotely three days per week.",
        REMOTE,
        question=REMOTE_QUESTION,
        evidence_texts=REMOTE_EVIDENCE,
    )
    assert right.sentences[0]["supported"] and right.sentences[0]["sources"] == [1]
    # A sentence giving no value of the kind asked for is judged by rules 1–3 only.
    context = grounding.check(
        "Laptops are replaced every 4 years.", REMOTE, question=REMOTE_QUESTION, evidence_texts=REMOTE_EVIDENCE
    )
    assert context.sentences[0]["supported"]


def test_a_who_answer_naming_someone_the_evidence_does_not_is_unsupported():
    sources = [
        (1, "The project director of the rail extension is Sunniva Halvorsen."),
        (2, "Marta Olsen is the director of the Pellham Quay museum."),
    ]
    question = "Who is the project director of the rail extension?"
    quoted = ["The project director of the rail extension is Sunniva Halvorsen."]
    wrong = "The director is Marta Olsen."
    assert grounding.check(wrong, sources).sentences[0]["supported"]  # source 2 says so, of another post
    assert not grounding.check(wrong, sources, question=question, evidence_texts=quoted).sentences[0]["supported"]
    right = "The project director is Sunniva Halvorsen."
    assert grounding.check(right, sources, question=question, evidence_texts=quoted).sentences[0]["supported"]


@pytest.mark.parametrize(
    ("sentence", "kind", "values"),
    [
        ("The line has 6 new stations and opens in 2027.", "number", ["6"]),
        ("It is led by Ingrid Maalouf.", "name", ["ingrid", "maalouf"]),
        ("It is descaled every forty days.", "frequency", ["40"]),
        ("The WX-7 is a turbine.", None, []),
        ("The answer is: Stations, in March.", "entity", ["stations"]),
    ],
)
def test_the_values_a_sentence_gives_for_the_kind_of_answer_asked(sentence, kind, values):
    assert evidence.answer_values(sentence, kind, "How many stations will the 2027 line have?") == values
