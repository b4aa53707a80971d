"""How the answers part scores an answer, on events small enough to check by hand."""

from __future__ import annotations

from bench import answers, golden, report
from bench.golden.questions import PlantedSentence, q

DOC = {"harbor": "doc-harbor", "turbine": "doc-turbine"}
VAULT = q("h1", "What is the access code for the Zerelda vault?", "harbor", "HARBOR999CB7")
BELLHAVEN = q("u1", "What is the access code for the Bellhaven vault?", None)


def source(n: int, document: str, text: str) -> dict:
    return {"n": n, "document": document, "title": "t", "text": text, "highlight": []}


def record(*, text: str = "", done: dict | None = None, evidence: str | None = None, sources=()) -> dict:
    return {
        "sources": list(sources),
        "evidence": {"text": evidence, "source": 1} if evidence else None,
        "text": text,
        "done": done if done is not None else {"type": "done", "status": "complete", "stats": {"model": "m"}},
        "error": None,
        "sources_ms": 40.0,
        "evidence_ms": 55.0 if evidence else None,
        "first_token_ms": 900.0,
        "done_ms": 3000.0,
    }


def test_a_fact_counts_only_as_whole_words_in_any_of_its_spellings():
    assert answers.states_fact("The rated power is 4.2 MW [1].", ("4.2 MW",))
    assert not answers.states_fact("The rated power is 14.2 MW.", ("4.2 MW",))
    assert not answers.states_fact("It takes 4.25 MW.", ("4.2 MW",))
    assert not answers.states_fact("every 145 days", ("45 days",))
    assert answers.states_fact("Renew it every 45\ndays.", ("45 days",))
    assert answers.states_fact("It costs €35.", ("35 euros", "€35"))
    assert answers.states_fact("Call 0800–5521 now", ("0800-5521",))  # an en dash from the model
    assert answers.states_fact("the code is harbor999cb7", ("HARBOR999CB7",))


def test_every_fact_must_be_stated_and_no_facts_states_nothing():
    assert answers.states_facts("118 metres and 4.2 MW", [("118 metres",), ("4.2 MW",)])
    assert not answers.states_facts("118 metres", [("118 metres",), ("4.2 MW",)])
    assert not answers.states_facts("anything", [])


def test_the_not_found_answer_is_recognised_inside_a_longer_reply():
    assert answers.says_not_found("I could not find this in the knowledge base.")
    assert answers.says_not_found("Sorry. I could not find this in the knowledge base")
    assert not answers.says_not_found("The code is HARBOR999CB7.")


def test_the_bench_knows_the_products_not_found_answer():
    from chat import prompting

    assert answers.NOT_FOUND_ANSWER == prompting.NOT_FOUND_ANSWER


def test_a_loop_is_the_same_30_characters_three_times():
    piece = "The passage is: [7] 31 March. "
    assert len(piece) == 30
    looping = "Answer: " + piece * 3
    repeated = answers.find_loop(looping)
    assert repeated is not None and len(repeated) == 30 and looping.count(repeated) == 3
    assert answers.find_loop("Answer: " + piece * 2) is None
    assert answers.find_loop("The vault code is HARBOR999CB7 [1]. It changes when the chief orders it.") is None
    assert answers.find_loop("ab" * 45) is not None  # a short cycle repeated is a loop too
    assert answers.find_loop("a" * 89) is None  # only 2 non-overlapping 30-character copies fit


def test_citations_are_read_from_single_and_grouped_markers():
    assert answers.cited_numbers("Yes [1]. Also [2, 3] and [12].") == {1, 2, 3, 12}
    assert answers.cited_numbers("No markers, [a] nor [].") == set()


def test_an_answer_that_states_the_fact_and_cites_the_right_document_scores_everywhere():
    events = record(
        text="The code is HARBOR999CB7 [1].",
        evidence="Its access code is HARBOR999CB7, and the code changes only when ordered.",
        sources=[source(1, "doc-harbor", "Its access code is HARBOR999CB7."), source(2, "doc-turbine", "x")],
    )
    score = answers.score_answer(VAULT, events, DOC, role="single")
    assert score["evidence_has_fact"] and score["answer_has_fact"] and score["trustworthy"]
    assert score["citation_right"] and score["first_source_right"] and score["first_source_has_fact"]
    assert not score["looping"] and not score["not_found"]
    assert score["flagged"] is None  # the server sent no grounding


def test_done_content_wins_over_the_streamed_tokens_and_grounding_sources_count_as_citations():
    done = {
        "type": "done",
        "status": "complete",
        "finish_reason": "stop",
        "content": "The code is HARBOR417KD2.",
        "grounding": [{"text": "The code is HARBOR417KD2.", "supported": True, "sources": [2]}],
        "stats": {"model": "m"},
    }
    events = record(
        text="The code is HARBOR999CB7.",
        done=done,
        sources=[source(1, "doc-turbine", "a"), source(2, "doc-harbor", "b")],
    )
    score = answers.score_answer(VAULT, events, DOC, role="single")
    assert score["answer"] == "The code is HARBOR417KD2."
    assert not score["answer_has_fact"]
    assert score["citation_right"]  # source 2, from the right document, through grounding
    assert not score["first_source_right"]
    assert not score["evidence_has_fact"]  # no evidence event
    assert not score["trustworthy"]  # wrong and not flagged


def test_a_wrong_answer_with_its_sentence_flagged_is_still_trustworthy():
    done = {
        "type": "done",
        "status": "complete",
        "finish_reason": "stop",
        "content": "The code is 4401.",
        "grounding": [{"text": "The code is 4401.", "supported": False, "sources": []}],
        "stats": {"model": "m"},
    }
    score = answers.score_answer(VAULT, record(done=done), DOC, role="single")
    assert not score["answer_has_fact"] and score["flagged"] == 1 and score["trustworthy"]
    assert not score["citation_right"]


def test_an_unanswerable_question_is_trustworthy_only_when_not_found_or_flagged():
    found_nothing = record(text=answers.NOT_FOUND_ANSWER, done={"type": "done", "stats": {"model": ""}})
    invented = record(text="The Bellhaven code is HARBOR999CB7.")
    assert answers.score_answer(BELLHAVEN, found_nothing, DOC, role="unanswerable")["trustworthy"]
    assert not answers.score_answer(BELLHAVEN, invented, DOC, role="unanswerable")["trustworthy"]


def test_a_loop_is_caught_by_finish_reason_or_by_repetition_in_the_stream():
    piece = "The passage is: [7] 31 March. "
    by_guard = record(text="fine", done={"type": "done", "finish_reason": "loop", "stats": {}})
    by_text = record(text=piece * 3)
    assert answers.score_answer(VAULT, by_guard, DOC, role="single")["looping"]
    assert answers.score_answer(VAULT, by_text, DOC, role="single")["repeated"] == piece  # the first one found


def test_summary_counts_each_figure_over_its_own_questions():
    good = answers.score_answer(
        VAULT,
        record(
            text="HARBOR999CB7 [1]",
            evidence="code is HARBOR999CB7",
            sources=[source(1, "doc-harbor", "HARBOR999CB7")],
        ),
        DOC,
        role="single",
    )
    bad = answers.score_answer(VAULT, record(text="4401"), DOC, role="follow_up")
    unknown = answers.score_answer(
        BELLHAVEN, record(text=answers.NOT_FOUND_ANSWER, done={"stats": {}}), DOC, role="unanswerable"
    )
    summary = answers.summarize([good, bad, unknown])
    assert summary["answer_accuracy"] == {"count": 1, "of": 2, "share": 0.5}
    assert summary["trustworthy"] == {"count": 2, "of": 3, "share": 0.667}
    assert summary["not_found_unanswerable"]["share"] == 1.0
    assert summary["retrieval_first_source_right"] == {"count": 1, "of": 1, "share": 1.0}
    assert summary["follow_up_first_source_right"] == {"count": 0, "of": 1, "share": 0.0}
    assert summary["ms_to_evidence"] == {"p50": 55.0, "p95": 55.0, "n": 1}
    assert summary["ms_to_first_token"]["n"] == 2  # the not-found answer called no model


def test_grounding_precision_and_recall_count_flags_on_planted_wrong_sentences():
    planted = [
        PlantedSentence("h1", "wrong 1", wrong=True, kind="invented"),
        PlantedSentence("h1", "wrong 2", wrong=True, kind="swapped"),
        PlantedSentence("h1", "right", wrong=False, kind="correct"),
        PlantedSentence("h1", "right too", wrong=False, kind="paraphrase"),
    ]
    scores = answers.grounding_scores(planted, [True, False, True, False])
    assert scores["precision"] == 0.5  # 1 of 2 flags is on a wrong sentence
    assert scores["recall"] == 0.5  # 1 of 2 wrong sentences is flagged
    assert scores["by_kind"]["swapped"] == {"flagged": 0, "of": 1}
    assert answers.grounding_scores(planted, [False] * 4)["precision"] is None


def test_the_grounding_adapter_checks_each_sentence_against_the_numbered_source_texts(monkeypatch):
    from chat import grounding

    calls = []

    def check(answer, sources, **context):
        calls.append((answer, sources))
        parts = [part for part in answer.split(". ") if part]
        return grounding.Grounded(answer, [{"text": t, "supported": "HARBOR999CB7" in t, "sources": []} for t in parts])

    monkeypatch.setattr(grounding, "check", check)
    sources = [source(1, "doc-harbor", "Its access code is HARBOR999CB7.")]
    verdicts = answers.check_sentences(["Code HARBOR999CB7.", "Code 4401.", "Code HARBOR999CB7. Or 4401."], sources)
    assert verdicts == [True, False, False]  # a sentence split in two is supported only if both parts are
    assert calls[0] == ("Code HARBOR999CB7.", [(1, "Its access code is HARBOR999CB7.", sources[0]["title"])])


def test_the_real_grounding_check_flags_a_changed_code_and_keeps_the_true_sentence():
    # Words alone settle both sentences, so the test does not load the embedding model.
    text = "The Zerelda vault holds seized goods. The access code for the Zerelda vault is HARBOR999CB7."
    sources = [source(1, "doc-harbor", text)]
    true, wrong = answers.check_sentences(
        ["The access code for the Zerelda vault is HARBOR999CB7.", "The access code for the Zerelda vault is 4401."],
        sources,
    )
    assert true and not wrong


def test_a_failing_grounding_check_is_reported_not_raised(monkeypatch):
    from chat import grounding

    def broken(answer, sources, **context):
        raise ValueError("contract changed")

    monkeypatch.setattr(grounding, "check", broken)
    result = answers.score_grounding(golden.planted_sentences()[:2], lambda question: [])
    assert result == {"error": "ValueError: contract changed"}


def test_the_plan_asks_a_pair_in_one_conversation_and_everything_else_alone():
    conversations = answers.plan()
    turns = [len(questions) for _, questions in conversations]
    assert turns.count(2) == len(golden.FOLLOW_UPS)
    assert sum(turns) == len(golden.QUESTIONS) + 2 * len(golden.FOLLOW_UPS) + len(golden.UNANSWERABLE)
    assert len(answers.plan(quick=True)) < len(conversations)


def test_ask_params_send_max_tokens_and_take_overrides(monkeypatch):
    monkeypatch.delenv("BENCH_ANSWERS_PARAMS", raising=False)
    assert answers.ask_params() == {"max_tokens": answers.MAX_TOKENS}
    monkeypatch.setenv("BENCH_ANSWERS_PARAMS", '{"mode": "sampling", "max_tokens": 96}')
    assert answers.ask_params() == {"max_tokens": 96, "mode": "sampling"}


def test_the_report_renders_the_answers_section():
    score = answers.score_answer(VAULT, record(text="HARBOR999CB7 | [1] <b>"), DOC, role="single")
    result = {
        "golden_set": golden.sizes(),
        "documents": [{"file": "a.pdf", "chunks": 3}],
        "params_sent": {"max_tokens": 160},
        "model": "SmolLM2",
        "summary": answers.summarize([score]),
        "answers": [{**score, "trustworthy": False}],
        "grounding_direct": {"error": "chat.grounding is not available: no module"},
        "settings": {"RETRIEVAL_K": 5, "answer params (as saved)": {"mode": "greedy"}},
        "seconds": 12.0,
    }
    text = "\n".join(report._answers({"started": "20260101T000000", "machine": {}}, result))
    assert "## Answers" in text
    assert "1/1 (100 %)" in text  # model-answer accuracy
    assert "not measured: chat.grounding is not available" in text
    assert "HARBOR999CB7 \\| [1] &lt;b&gt;" in text  # a model's pipe or markup does not break the table
    assert "RETRIEVAL_K=5" in text
