"""A follow-up's prompt replays the question before it as the model read it (so the model's cache
of it is reused), and a passage keeps one number for the whole conversation. The real MiniLM and
SmolLM2's tokenizer and template run; a scripted engine records the prompts and gives the answers."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat import answering, llm, services
from chat.models import Citation
from documents.models import Visibility
from tests.chat.factories import ZORBLAX_PASSAGES, make_conversation, make_document

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = "How often must the Zorblax 3000 be descaled?"
FOLLOW_UP = "And how long does it take?"


class RecordingEngine:
    """The real engine's tokenizer and context; records each prompt and answers from a script."""

    def __init__(self, real, answers: list[str]):
        self.real, self.answers, self.prompts = real, list(answers), []
        self.model_name, self.context_size, self.closed = real.model_name, real.context_size, False

    def count_tokens(self, text):
        return self.real.count_tokens(text)

    def count_prompt_tokens(self, messages):
        return self.real.count_prompt_tokens(messages)

    def stream(self, messages, params, *, stats=None, **queueing):
        self.prompts.append(messages)
        text = self.answers.pop(0)

        class Stream:
            async def __aenter__(self):
                stats.update(model="recording", finish_reason="stop")
                return self

            async def __aexit__(self, *exc):
                return None

            def __aiter__(self):
                return self

            async def __anext__(self):
                nonlocal text
                if not text:
                    raise StopAsyncIteration
                piece, text = text, ""
                return piece

        return Stream()


@pytest.fixture
def recording(settings, monkeypatch):
    settings.LLM_BASE_URL = ""
    settings.LLM_MODEL_PATH = ""

    def install(answers: list[str]) -> RecordingEngine:
        engine = RecordingEngine(llm.get_engine(), answers)

        async def fake_engine():
            return engine

        monkeypatch.setattr(llm, "aget_engine", fake_engine)
        return engine

    return install


async def ask(conversation, user, text: str) -> tuple[list[dict], object]:
    question = await database_sync_to_async(services.append_user_message)(conversation, text)
    events: list[dict] = []

    async def emit(event):
        events.append(event)

    message = await answering.answer(question, llm.GenerationParams(mode="greedy"), user=user, emit=emit)
    return events, message


def sources_of(events) -> list[dict]:
    return next(event for event in events if event["type"] == "sources")["sources"]


async def test_a_follow_up_replays_the_first_prompt_and_keeps_each_passages_number(alice, recording):
    await database_sync_to_async(make_document)(alice, "Zorblax 3000 manual", ZORBLAX_PASSAGES)
    engine = recording(["The Zorblax 3000 must be descaled every 40 days.", "Descaling takes about twelve minutes."])
    conversation = await database_sync_to_async(services.create_conversation)(alice)

    first_events, first = await ask(conversation, alice, FIRST)
    second_events, second = await ask(conversation, alice, FOLLOW_UP)

    first_prompt, second_prompt = engine.prompts
    # The first question as the model read it, then its saved answer, then the follow-up.
    assert second_prompt[:2] == first_prompt
    # The first answer as the model wrote it (its cache holds that), not as the check cited it.
    assert first.content == "The Zorblax 3000 must be descaled every 40 days [1]."
    assert second_prompt[2] == {"role": "assistant", "content": "The Zorblax 3000 must be descaled every 40 days."}
    first_numbers = {source["ordinal"]: source["n"] for source in sources_of(first_events)}
    second_numbers = {source["ordinal"]: source["n"] for source in sources_of(second_events)}
    descaling = 0  # the descaling section's chunk: found for both questions
    assert first_numbers[descaling] == second_numbers[descaling]
    for ordinal, n in second_numbers.items():  # a passage new to the conversation takes a new number
        assert n == first_numbers[ordinal] if ordinal in first_numbers else n > max(first_numbers.values())
    # Held word for word already: named, not repeated.
    n = second_numbers[descaling]
    assert f"[{n}] Zorblax 3000 manual (given above)" in second_prompt[-1]["content"]
    assert "".join(m["content"] for m in second_prompt).count("takes about twelve minutes") == 1
    # Saved and shown under the same numbers.
    saved = await database_sync_to_async(lambda: {c.ordinal: c.n for c in Citation.objects.filter(message=second)})()
    assert saved == second_numbers
    assert second.content.endswith(f"[{n}].")  # the grounding check cites it by its number


async def test_a_passage_the_reader_may_no_longer_read_is_not_replayed(alice, bob, recording):
    manual = await database_sync_to_async(make_document)(
        bob, "Zorblax 3000 manual", ZORBLAX_PASSAGES, visibility=Visibility.SHARED
    )
    engine = recording(["The Zorblax 3000 must be descaled every 40 days.", "I could not find this."])
    conversation = await database_sync_to_async(services.create_conversation)(alice)
    await ask(conversation, alice, FIRST)
    assert "descaled every 40 days" in engine.prompts[0][-1]["content"]

    manual.visibility = Visibility.PRIVATE
    await database_sync_to_async(manual.save)()
    await database_sync_to_async(make_document)(alice, "Kettle notes", [("Kettle", "The kettle takes four minutes.")])
    await ask(conversation, alice, "How long does the kettle take to boil?")

    replay = "".join(message["content"] for message in engine.prompts[1])
    assert FIRST in replay  # the question and its answer are Alice's own
    assert "blue Zorblax tablets" not in replay and "Zorblax 3000 manual" not in replay


def test_numbers_continue_after_every_number_the_conversation_used(alice):
    conversation = make_conversation(alice, exchanges=[("First?", "One [1].")])
    current = services.append_user_message(conversation, "Next?")
    earlier = conversation.messages.earlier_turns(current, alice)
    assert earlier.number([11, 12]) == [earlier.next_number, earlier.next_number + 1]
    # Two chunks once numbered alike (before numbers were kept per conversation) get distinct numbers.
    clash = type(earlier)(earlier.turns, None, "", {7: 1, 8: 1}, 2)
    assert clash.number([7, 8, 9]) == [1, 2, 3]
