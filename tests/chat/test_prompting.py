"""Prompt building with SmolLM2's real tokenizer and chat template: what goes in, what is dropped
first when the context is full, and the exact token budget."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chat import prompting
from chat.llm import GenerationParams, PromptTooLong, get_engine
from chat.prompting import NOT_FOUND_ANSWER, Turn, build_messages

QUESTION = "When was the Zorbex telescope completed?"


@dataclass
class Passage:
    n: int
    title: str
    location: str
    text: str


PASSAGES = [
    Passage(1, "Zorbex telescope", "page 2", "The Zorbex telescope was completed in 1987 in northern Chile."),
    Passage(2, "Observatory guide", "Visiting > Hours", "Visitors may tour the observatory on Saturdays."),
    Passage(3, "Village bakery", "", "The bakery sells rye bread and croissants every morning."),
]
HISTORY = [
    Turn("Who built the first turn telescope?", "The first turn telescope was built by the Andes consortium [1]."),
    Turn("How big is the second turn mirror?", "The second turn mirror is four metres wide [2]."),
    Turn("Where is the third turn site?", "The third turn site is in northern Chile [1]."),
]


@pytest.fixture
def engine(settings):
    settings.LLM_BASE_URL = ""
    settings.LLM_MODEL_PATH = ""
    settings.LLM_CONTEXT = 2048
    settings.LLM_MAX_TOKENS = 2048  # lets a test squeeze the prompt budget through max_tokens
    settings.LLM_PASSAGE_MAX_TOKENS = 320
    return get_engine()


def plan_with_budget(engine, budget: int, *, passages=PASSAGES, history=HISTORY, question=QUESTION):
    """Plan with exactly ``budget`` prompt tokens available (the rest reserved for the answer)."""
    params = GenerationParams(max_tokens=engine.context_size - budget)
    return build_messages(question=question, passages=passages, turns=history, engine=engine, params=params)


def roomy(engine, **kwargs):
    return plan_with_budget(engine, engine.context_size - 100, **kwargs)


def everything_text(plan) -> str:
    return "\n".join(message["content"] for message in plan.messages)


def test_with_room_to_spare_the_prompt_holds_instructions_passages_history_and_question(engine):
    plan = roomy(engine)

    roles = [message["role"] for message in plan.messages]
    assert roles == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert NOT_FOUND_ANSWER in plan.messages[0]["content"]
    assert "[1]" in plan.messages[0]["content"]
    final = plan.messages[-1]["content"]
    assert "[1] Zorbex telescope\nThe Zorbex telescope was completed in 1987" in final
    assert "[2] Observatory guide\n" in final and "Visiting > Hours" not in final  # titles, not headings
    assert "[3] Village bakery\nThe bakery" in final
    assert final.endswith(f"Question: {QUESTION}")
    # The best passage goes last, next to the question (PROMPT_PASSAGE_ORDER=last, the default).
    assert final.index("[3]") < final.index("[2]") < final.index("[1]")
    assert plan.passages_used == PASSAGES
    assert plan.history_used == 6
    assert plan.prompt_tokens == engine.count_prompt_tokens(plan.messages)


def test_the_best_passage_can_go_first(engine, settings):
    settings.PROMPT_PASSAGE_ORDER = "first"
    final = roomy(engine).messages[-1]["content"]
    assert final.index("[1]") < final.index("[2]") < final.index("[3]")


def test_the_oldest_history_turn_is_dropped_first(engine):
    full = roomy(engine)

    plan = plan_with_budget(engine, full.prompt_tokens - 1)

    assert plan.history_used == 4
    assert "first turn" not in everything_text(plan)
    assert "second turn" in everything_text(plan) and "third turn" in everything_text(plan)
    assert plan.passages_used == PASSAGES


def test_all_history_goes_before_the_lowest_ranked_passage(engine):
    no_history = roomy(engine, history=[])

    plan = plan_with_budget(engine, no_history.prompt_tokens - 1)

    assert plan.history_used == 0
    assert "turn" not in everything_text(plan)
    assert plan.passages_used == PASSAGES[:2]
    assert "[3]" not in plan.messages[-1]["content"]
    assert "bakery" not in everything_text(plan)


def test_the_budget_is_met_exactly_at_every_size(engine):
    bare = roomy(engine, passages=[], history=[]).prompt_tokens
    full = roomy(engine).prompt_tokens
    kept_before = (0, 0)

    for budget in range(bare, full + 1, 5):
        plan = plan_with_budget(engine, budget)
        kept = (len(plan.passages_used), plan.history_used)

        assert plan.prompt_tokens == engine.count_prompt_tokens(plan.messages)
        assert plan.prompt_tokens <= budget
        assert plan.history_used == 0 or plan.passages_used == PASSAGES  # passages come first
        assert kept >= kept_before  # a bigger budget never keeps less
        kept_before = kept
    assert kept_before != (3, 6) or budget == full
    assert plan_with_budget(engine, full).history_used == 6  # the boundary itself fits
    assert plan_with_budget(engine, full - 1).history_used == 4


def test_every_passage_is_cut_to_the_passage_budget(engine, settings):
    settings.LLM_PASSAGE_MAX_TOKENS = 40
    long_text = " ".join(f"Sentence {i} describes the Zorbex telescope mirror in detail." for i in range(60))
    long_passage = Passage(1, "Zorbex manual", "Chapter 3", long_text)

    plan = roomy(engine, passages=[long_passage])

    final = plan.messages[-1]["content"]
    kept = final.split("[1] Zorbex manual\n", 1)[1].split("\n\nQuestion:", 1)[0]
    assert kept.endswith(" …")
    assert long_text.startswith(kept.removesuffix(" …"))
    assert 30 < engine.count_tokens(kept) <= 40
    assert plan.passages_used == [long_passage]  # the caller keeps the full text for citations


def test_turns_without_an_answer_are_not_replayed(engine):
    history = [
        Turn("Who built the first turn telescope?", "The Andes consortium [1]."),
        Turn("A question that was stopped before any text", ""),
    ]

    plan = roomy(engine, history=history)

    assert [m["content"] for m in plan.messages[1:3]] == [
        f"Passages:\n\n{prompting.NO_PASSAGES}\n\nQuestion: Who built the first turn telescope?",
        "The Andes consortium [1].",
    ]
    assert plan.history_used == 2
    assert "stopped" not in everything_text(plan)


def test_passages_may_be_plain_dicts_without_numbers(engine):
    passages = [{"title": "Zorbex telescope", "location": "", "text": "Completed in 1987."}, {"title": "", "text": "x"}]

    plan = roomy(engine, passages=passages)

    assert "[1] Zorbex telescope\nCompleted in 1987." in plan.messages[-1]["content"]
    assert "[2] Untitled\nx" in plan.messages[-1]["content"]


def test_without_passages_the_model_is_told_nothing_was_found(engine):
    plan = roomy(engine, passages=[], history=[])

    assert "No passages were found" in plan.messages[-1]["content"]
    assert plan.passages_used == []


def test_a_question_too_long_for_the_context_is_refused_with_its_size(engine):
    question = "Why is the sky blue? " * 500

    with pytest.raises(PromptTooLong, match=r"Your question is too long: \d+ tokens, the model's context holds 2048"):
        roomy(engine, question=question)


def test_a_question_that_fits_only_without_room_for_the_answer_is_refused(engine):
    bare = roomy(engine, passages=[], history=[]).prompt_tokens

    assert plan_with_budget(engine, bare, passages=[], history=[]).prompt_tokens == bare
    with pytest.raises(PromptTooLong, match="reserved for the answer"):
        plan_with_budget(engine, bare - 1, passages=[], history=[])


# --- a follow-up replays the question before it, so the model's cache of it is reused --------------

FOLLOW_UP = "And where was it built?"


def test_a_follow_up_prompt_begins_with_the_prompt_of_the_question_before_it(engine):
    first = roomy(engine, history=[])
    answer = "The Zorbex telescope was completed in 1987 [1]."

    follow_up = roomy(engine, question=FOLLOW_UP, history=[Turn(QUESTION, answer, PASSAGES)])

    assert follow_up.messages[:2] == first.messages[:2]
    assert follow_up.messages[2] == {"role": "assistant", "content": answer}
    # In tokens too: what the model read for the first question is the start of the follow-up.
    first_tokens = engine._prepare(first.messages).payload
    assert engine._prepare(follow_up.messages).payload[: len(first_tokens)] == first_tokens


def test_a_passage_the_prompt_already_holds_is_named_not_repeated(engine):
    history = [Turn(QUESTION, "Completed in 1987 [1].", PASSAGES[:2])]
    new = Passage(4, "Observatory history", "", "The Zorbex dome was built by the Andes consortium.")

    plan = roomy(engine, question=FOLLOW_UP, history=history, passages=[PASSAGES[0], new])

    final = plan.messages[-1]["content"]
    assert "[1] Zorbex telescope (given above)" in final
    assert "[4] Observatory history\nThe Zorbex dome was built" in final
    assert everything_text(plan).count("completed in 1987 in northern Chile") == 1
    assert plan.passages_used == [PASSAGES[0], new]


def test_of_a_held_passage_read_differently_now_only_the_sentences_not_held_are_shown(engine):
    earlier = Passage(1, "Zorbex telescope", "", "The Zorbex telescope was completed in 1987. It sits in Chile.")
    history = [Turn(QUESTION, "In 1987 [1].", [earlier])]
    now = Passage(1, "Zorbex telescope", "", "It sits in Chile. Its mirror is four metres wide.")  # another excerpt

    final = roomy(engine, question=FOLLOW_UP, history=history, passages=[now]).messages[-1]["content"]

    assert "[1] Zorbex telescope (more)\nIts mirror is four metres wide.\n" in final
    assert "Chile" not in final


def test_when_the_turn_that_showed_a_passage_is_dropped_the_next_one_shows_it_in_full(engine):
    history = [
        Turn("Who built the first turn telescope?", "The Andes consortium [1].", PASSAGES[:1]),
        Turn("When was it completed?", "In 1987 [1].", PASSAGES[:1]),
    ]
    full = roomy(engine, history=history)
    assert "[1] Zorbex telescope (given above)" in full.messages[3]["content"]

    plan = plan_with_budget(engine, full.prompt_tokens - 1, history=history)

    assert plan.history_used == 2
    assert "first turn" not in everything_text(plan)
    assert "[1] Zorbex telescope\nThe Zorbex telescope was completed" in plan.messages[1]["content"]
