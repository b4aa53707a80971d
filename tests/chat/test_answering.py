"""The answer use case around the model: follow-ups, passage selection, evidence, the loop
guard and what later prompts replay. The real MiniLM and SmolLM2 run unless the test is about
the model's output itself (a scripted engine stands in only there)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async

from chat import answering, evidence, llm, sentences, services
from chat.models import Conversation, MessageStatus
from documents import embeddings
from tests.chat.factories import ZORBLAX_PASSAGES, make_conversation, replayed

pytestmark = pytest.mark.django_db(transaction=True)


# --- follow-up questions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("And what is its hub height?", True),
        ("How long does that take?", True),
        ("Warranty?", True),
        ("How often must the Zorblax 3000 be descaled?", False),
        ("Who painted the ceiling of the Sistine Chapel?", False),
    ],
)
def test_follow_ups_are_short_or_refer_back(question, follow_up):
    assert answering.is_follow_up(question) is follow_up


def test_a_follow_up_is_searched_with_the_previous_question():
    previous = "How often must the Zorblax 3000 be descaled?"
    assert (
        answering.retrieval_query("And how long does it take?", previous) == f"{previous}\nAnd how long does it take?"
    )
    assert answering.retrieval_query("Who built the Eiffel tower?", previous) == "Who built the Eiffel tower?"
    assert answering.retrieval_query("And how long does it take?", None) == "And how long does it take?"


def test_a_follow_up_is_also_searched_with_the_names_the_previous_answers_evidence_gave():
    previous = "What was the best-selling product in Q3?"
    quoted = "The best-selling product in Q3 was the Loop S2, launched in March."
    # Loop S2 is new; Q3 was asked already, March is a date and 3 a number.
    assert answering.follow_up_context(previous, quoted) == "loop s2"
    assert answering.follow_up_context(previous, "") == ""
    follow_up = "How much does it cost?"
    assert answering.retrieval_query(follow_up, previous, quoted) == f"{previous}\n{follow_up}\nloop s2"
    assert answering.evidence_question(follow_up, previous, quoted) == "How much does it cost? loop s2"
    standalone = "Who is the CEO of Fennick Audio?"
    assert answering.evidence_question(standalone, previous, quoted) == standalone
    assert answering.retrieval_query(standalone, previous, quoted) == standalone


def test_the_previous_answers_evidence_is_read_from_the_conversation(alice):
    conversation = services.create_conversation(alice)
    first = services.append_user_message(conversation, "What was the best-selling product?")
    assert conversation.messages.earlier_turns(first, alice).previous_evidence == ""
    services.save_assistant_message(
        conversation, content="The Loop S2.", evidence={"text": "The best seller was the Loop S2.", "source": 1}
    )
    second = services.append_user_message(conversation, "How much does it cost?")
    assert conversation.messages.earlier_turns(second, alice).previous_evidence == "The best seller was the Loop S2."


async def test_a_follow_up_finds_the_passage_of_the_conversations_topic(alice, zorblax_manual):
    previous = "How often must the Zorblax 3000 be descaled?"
    hits, _ = await answering.search(alice, answering.retrieval_query("And how long does it take?", previous))
    assert "twelve minutes" in hits[0].text


# --- passages and evidence ---------------------------------------------------------------------


def test_passages_far_below_the_best_are_left_out(settings):
    settings.ANSWER_RELATIVE_SCORE = 0.75
    hits = [SimpleNamespace(score=score) for score in (0.9, 0.8, 0.675, 0.5)]
    assert [h.score for h in answering.keep_relevant(hits)] == [0.9, 0.8, 0.675]
    assert answering.keep_relevant([]) == []


def test_evidence_is_the_sentence_that_answers_the_question_in_each_passage(db):
    passages = [SimpleNamespace(text=text) for _, text in ZORBLAX_PASSAGES]
    question = "How long does descaling take?"
    found = evidence.find(question, embeddings.embed_query(question), passages)
    assert found.best == ("Descaling uses the blue Zorblax tablets and takes about twelve minutes.", 1)
    (first,) = found.highlights[0]
    assert passages[0].text[first["start"] : first["end"]] == first["text"] == found.best[0]
    assert all(len(marks) == 1 for marks in found.highlights)  # every passage has its best sentence


HANDBOOK = [
    (
        "Handbook",
        "This handbook explains the day-to-day rules for everyone employed by Brightwater Analytics. "
        "It covers holidays, travel and expenses.",
    ),
    (
        "Handbook",
        "Book travel through the travel desk. Flights always need approval from the finance director, Henrike Osei.",
    ),
    ("Rail report", "The works at Tanner's Row were approved by Millrace Council in March."),
]


@pytest.mark.parametrize(
    ("question", "kept", "best"),
    [
        # The relevant passage holds no name: the later passage of the same document that does is kept.
        ("Who must approve flights for Brightwater employees?", [0, 1], 2),
        # The relevant passage holds a number, the kind asked: nothing later is looked at.
        ("How many days of holiday do Brightwater employees get?", [0], None),
    ],
)
def test_a_lower_passage_of_a_relevant_document_is_kept_when_only_it_answers(db, question, kept, best):
    passages = [
        SimpleNamespace(title=title, text=text, score=score)
        for (title, text), score in zip(HANDBOOK, (0.8, 0.45, 0.4), strict=True)
    ]
    if "How many" in question:
        passages[0].text += " Employees get 27 days of paid holiday per year."
    relevant = len(answering.keep_relevant(passages))
    assert relevant == 1
    found = evidence.find(question, embeddings.embed_query(question), passages, relevant=relevant)
    hits, found = answering.with_best_evidence(passages, relevant, found)
    assert hits == [passages[index] for index in kept]
    assert len(found.highlights) == len(kept)
    if best is not None:
        assert found.best == ("Flights always need approval from the finance director, Henrike Osei.", best)
    else:
        assert found.best is not None and found.best[1] == 1 and "27 days" in found.best[0]


def test_no_evidence_is_quoted_when_nothing_is_close_to_the_question(db):
    passages = [SimpleNamespace(text=text) for _, text in ZORBLAX_PASSAGES]
    question = "Who painted the ceiling of the Sistine Chapel?"
    assert evidence.find(question, embeddings.embed_query(question), passages).best is None


# --- what later prompts replay -----------------------------------------------------------------


def test_looping_and_mostly_unsupported_answers_are_not_replayed(alice):
    conversation = make_conversation(alice, exchanges=[("First?", "One [1].")])
    for question, answer, fields in [
        ("Looped?", "Again again.", {"finish_reason": "loop"}),
        (
            "Invented?",
            "Mercury boils at 101 C. It is blue.",
            {"grounding": [{"text": "Mercury boils at 101 C.", "supported": False, "sources": []}] * 2},
        ),
        (
            "Half right?",
            "Right [1]. Wrong.",
            {
                "grounding": [
                    {"text": "Right [1].", "supported": True, "sources": [1]},
                    {"text": "Wrong.", "supported": False, "sources": []},
                ]
            },
        ),
    ]:
        services.append_user_message(conversation, question)
        services.save_assistant_message(conversation, content=answer, **fields)
    current = services.append_user_message(conversation, "Now?")
    assert replayed(conversation, current, alice) == [("First?", "One [1]."), ("Half right?", "Right [1]. Wrong.")]


# --- the repetition guard ----------------------------------------------------------------------


class LoopingEngine:
    """Streams a looping answer, as SmolLM2 sometimes does; records whether it was stopped."""

    model_name = "looping-test-model"
    context_size = 4096
    closed = False

    def count_tokens(self, text):
        return len(text.split())

    def count_prompt_tokens(self, messages):
        return sum(len(m["content"].split()) for m in messages)

    def stream(self, messages, params, *, stats=None, **queueing):
        engine = self

        class Stream:
            def __init__(self):
                self.pieces = iter(["Unused days expire on 31 March. "] + ["The passage is: [7] 31 March. "] * 50)

            def __aiter__(self):
                return self

            async def __anext__(self):
                try:
                    return next(self.pieces)
                except StopIteration:
                    raise StopAsyncIteration from None

            async def __aenter__(self):
                stats.update(model=engine.model_name, finish_reason="length")
                return self

            async def __aexit__(self, *exc):
                engine.closed = True

        return Stream()


async def test_a_looping_answer_is_cut_saved_without_the_repetition_and_generation_stops(
    alice, zorblax_manual, monkeypatch
):
    engine = LoopingEngine()

    async def fake_engine():
        return engine

    monkeypatch.setattr(llm, "aget_engine", fake_engine)
    conversation = await database_sync_to_async(services.create_conversation)(alice)
    question = await database_sync_to_async(services.append_user_message)(
        conversation, "When do unused Zorblax descaling days expire?"
    )
    events = []

    async def emit(event):
        events.append(event)

    message = await answering.answer(question, llm.GenerationParams(), user=alice, emit=emit)
    tokens = [e for e in events if e["type"] == "token"]
    done = events[-1]
    assert engine.closed and len(tokens) < 10  # stopped early, not after 51 pieces
    assert done["type"] == "done" and done["finish_reason"] == "loop"
    assert done["content"].startswith("Unused days expire on 31 March")
    assert done["content"].count("The passage is") <= 1
    assert message.finish_reason == "loop" and message.status == MessageStatus.COMPLETE
    assert message.content == done["content"]


# --- the optional model rewrite of follow-ups ---------------------------------------------------


async def test_with_llm_rewrite_a_follow_up_is_searched_as_the_model_rewrote_it(
    alice, zorblax_manual, settings, monkeypatch
):
    settings.FOLLOWUP_REWRITE = "llm"
    searched = []
    real_search = answering.search

    async def spy(user, query, scope=None):
        searched.append(query)
        return await real_search(user, query, scope)

    monkeypatch.setattr(answering, "search", spy)
    conversation: Conversation = await database_sync_to_async(make_conversation)(
        alice, exchanges=[("How often must the Zorblax 3000 be descaled?", "Every 40 days [1].")]
    )
    question = await database_sync_to_async(services.append_user_message)(conversation, "And how long does it take?")

    async def emit(event):
        pass

    await answering.answer(question, llm.GenerationParams(max_tokens=8), user=alice, emit=emit)
    (query,) = searched
    assert query.strip() and query != answering.retrieval_query(
        "And how long does it take?", "How often must the Zorblax 3000 be descaled?"
    )


def test_names_codes_and_numbers_no_passage_mentions_are_reported():
    passages = [
        SimpleNamespace(title="Port of Zerelda: Vault Handbook", text="The Zerelda vault code is HARBOR999CB7.")
    ]
    assert evidence.missing_facts("What is the access code for the Bellhaven vault?", passages) == ["bellhaven"]
    assert evidence.missing_facts("What was the revenue in Q1?", passages) == ["q1"]
    assert evidence.missing_facts("What is the code of the Zerelda vault?", passages) == []
    # A title made from a file name ("lindqvist-clinic-faq") still names the clinic.
    named = [SimpleNamespace(title="lindqvist-clinic-faq", text="A kennel stay costs 29 euros per night.")]
    assert evidence.missing_facts("What does the kennel cost at the Lindqvist clinic?", named) == []


async def test_a_question_about_something_no_passage_names_gets_not_found_without_the_model(
    conversation_with_alice, zorblax_manual, monkeypatch
):
    events, message = await _answer_without_model(
        conversation_with_alice, monkeypatch, "How often must the Zorblax 9000 be descaled?"
    )
    assert [e["type"] for e in events] == ["sources", "token", "done"]
    assert events[0]["sources"] == [] and message.content == answering.prompting.NOT_FOUND_ANSWER


async def _answer_without_model(conversation_with_alice, monkeypatch, text: str):
    """``(events, saved answer)`` for ``text``, failing if the model is called."""

    async def no_engine():
        raise AssertionError("the model must not be called")

    monkeypatch.setattr(llm, "aget_engine", no_engine)
    conversation, alice = conversation_with_alice
    question = await database_sync_to_async(services.append_user_message)(conversation, text)
    events = []

    async def emit(event):
        events.append(event)

    message = await answering.answer(question, llm.GenerationParams(), user=alice, emit=emit)
    return events, message


def test_a_documents_topic_is_its_title_and_the_question_names_most_of_its_sentences_hold():
    texts = [
        "The WX-7 has a rotor diameter of 136 metres. The WX-7 cuts in at 3.1 m/s.",
        "The WX-7 cuts out above 27 m/s. Its gearbox holds 780 litres of oil.",
        "Service visits for the WX-7 are due every six months. The tower is steel.",
    ]
    question = "What is the rotor diameter of the WX-7?"
    title = sentences.content_words("windmere-spec")
    about = evidence.topic(question, "windmere-spec", texts)
    assert about == title | {"wx-7"}  # "rotor", "diameter": in one sentence of six, what is asked
    assert evidence.focus(question, about) == "What is the rotor diameter of the"
    # Too few sentences to tell what the document is about: only the title counts.
    assert evidence.topic(question, "windmere-spec", texts[:1]) == title
    # Common words are what is asked, however many sentences hold them.
    many = [f"The wind speed was {n} m/s. The wind speed rose." for n in range(4)]
    assert evidence.topic("Above which wind speed does it stop?", "spec", many) == {"spec"}


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who leads the surgical team?", "name"),
        ("Whose approval does a train ticket need?", "name"),
        ("How often is the machine descaled?", "frequency"),
        ("How many new stations will the line have?", "number"),
        ("How much does a night in the kennel cost?", "number"),
        ("When will the soundbar launch?", "number"),
        ("At what temperature is the loaf baked?", "number"),
        ("Which mill supplies the flour?", "entity"),
        ("In which city is the new warehouse?", "entity"),
        ("Above which wind speed does it stop?", "number"),
        ("And what is its hub height?", "number"),
        ("What is the access code for the vault?", None),
    ],
)
def test_the_kind_of_answer_a_question_asks_for(question, kind):
    assert evidence.answer_kind(question) == kind


def test_a_sentence_holds_a_new_answer_of_the_kind_asked_for():
    who = "Who leads the surgical team?"
    assert evidence.holds_new("The surgical team is led by Dr Ingrid Maalouf.", "name", who)
    assert not evidence.holds_new("The surgical team operates on Monday and Tuesday.", "name", who)
    assert not evidence.holds_new("Surgery is planned in March.", "name", who)
    many = "How many stations will the 2027 line have?"
    assert evidence.holds_new("The line will have six new stations.", "number", many)
    assert not evidence.holds_new("The line opens in 2027.", "number", many)  # the question's own number
    often = "How often is the machine descaled?"
    assert evidence.holds_new("It is descaled every 40 days.", "frequency", often)
    assert not evidence.holds_new("Descaling takes 12 minutes.", "frequency", often)
    assert not evidence.holds_new("It is descaled every 40 days.", None, "What does the warranty cover?")
    which = "Which tunnel boring machine digs the Aldermoor tunnel?"
    assert evidence.holds_new("The machine, called Greta, digs 11 metres a day.", "entity", which)
    assert not evidence.holds_new("The Aldermoor tunnel is dug in March.", "entity", which)
    # The document's own subject is not the answer.
    about = {"zerelda", "harbor"}
    assert not evidence.holds_new("The Zerelda Harbor Authority runs it.", "name", "Who runs it?", about)
    assert evidence.holds_new("The office is run by Odalys Verhoeven.", "name", "Who runs it?", about)


def test_a_sentence_of_the_kind_asked_for_is_preferred_to_one_that_repeats_the_question(db):
    passages = [
        SimpleNamespace(
            title="kennel-faq",
            text="Overnight stays in the kennel are possible for dogs and cats. "
            "A night in the kennel costs 29 euros, food included.",
        )
    ]
    question = "How much does a night in the kennel cost?"
    found = evidence.find(question, embeddings.embed_query(question), passages)
    assert found.best == ("A night in the kennel costs 29 euros, food included.", 1)


def test_an_faq_question_is_never_quoted_as_the_evidence(db):
    text = "How much does a night in the kennel cost? Our kennel has twelve heated rooms for pets."
    passages = [SimpleNamespace(title="kennel-faq", text=text)]
    question = "How much does a night in the kennel cost?"
    found = evidence.find(question, embeddings.embed_query(question), passages)
    assert found.best is None or "?" not in found.best[0]
    assert all("?" not in mark["text"] for marks in found.highlights for mark in marks)


def test_question_words_no_passage_contains_are_reported():
    passages = [SimpleNamespace(title="brightwater-handbook", text="Full-time employees get 27 days of paid holiday.")]
    question = "How many weeks of parental leave do Brightwater employees get?"
    assert evidence.unmatched_words(question, passages) == sorted(map(sentences.stem, ["leave", "parental", "weeks"]))
    # Words asking for the kind of answer ("how many", "cost", "explain") are not what is asked about.
    assert evidence.unmatched_words("How many days of holiday do employees get?", passages) == []
    assert evidence.unmatched_words("Explain everything about the holidays of employees.", passages) == []
    # A word inside a longer one counts as contained ("holiday" in "holidays").
    assert evidence.unmatched_words("Is the holiday paid?", [SimpleNamespace(text="Holidays are paid.")]) == []


def test_weak_evidence_for_a_question_with_words_no_passage_holds_is_not_answerable(db, settings):
    settings.ANSWER_MIN_EVIDENCE = 0.5
    passages = [SimpleNamespace(title="Zorblax 3000 manual", text=text) for _, text in ZORBLAX_PASSAGES]
    for question in ("How many weeks of parental leave do employees get?", "How often must the tyres be rotated?"):
        found = evidence.find(question, embeddings.embed_query(question), passages)
        assert found.weak, (question, found)
        assert not answering.answerable(question, passages, found)
    for question in ("How often must the Zorblax 3000 be descaled?", "What does the warranty cover?"):
        found = evidence.find(question, embeddings.embed_query(question), passages)
        assert answering.answerable(question, passages, found), (question, found)
    # Strong evidence answers even when a word of the question is in no passage.
    question = "How often must the Zorblax 3000 coffee machine be descaled by staff?"
    found = evidence.find(question, embeddings.embed_query(question), passages)
    assert not found.weak and evidence.unmatched_words(question, passages) == ["staff"]
    assert answering.answerable(question, passages, found)


async def test_a_question_the_passages_only_seem_to_answer_gets_not_found_without_the_model(
    conversation_with_alice, zorblax_manual, monkeypatch
):
    events, message = await _answer_without_model(
        conversation_with_alice, monkeypatch, "How many weeks of parental leave does the Zorblax 3000 give?"
    )
    assert [e["type"] for e in events] == ["sources", "token", "done"]
    assert message.content == answering.prompting.NOT_FOUND_ANSWER


@pytest.fixture
def conversation_with_alice(alice):
    return services.create_conversation(alice), alice


def test_the_model_reads_each_passages_evidence_with_one_sentence_on_each_side():
    text = "One intro. Two context. The code is HARBOR999CB7. Four after. Five far away."
    passage = SimpleNamespace(title="Handbook", location="Vaults", score=0.9, text=text)
    start = text.index("The code")
    highlight = [{"text": "The code is HARBOR999CB7.", "start": start, "end": start + 25}]
    cut = evidence.around(passage, highlight)
    assert cut.text == "Two context. The code is HARBOR999CB7. Four after."
    assert (cut.title, cut.score) == ("Handbook", 0.9)
    assert evidence.around(passage, []) is passage
