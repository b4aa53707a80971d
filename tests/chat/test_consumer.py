"""The chat websocket through the real ASGI router (origin check, session and token auth),
with real MiniLM retrieval and the real SmolLM2 model."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from chat import prompting, sentences, services
from chat.models import Citation, Conversation, MessageStatus, Role
from chat.protocol import CLOSE_NOT_FOUND, CLOSE_NOT_SIGNED_IN
from tests.chat.factories import make_conversation, replayed
from tests.chat.sockets import (
    OFF_TOPIC,
    ON_TOPIC,
    ORIGIN,
    SLOW,
    close_code,
    events_until_end,
    login_headers,
    messages_of,
    of_type,
    open_socket,
    session_headers,
    socket_for,
    token_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)


def words(text: str) -> list[str]:
    return sentences.words(sentences.strip_citations(text))


@database_sync_to_async
def citations_of(message_id: str) -> list[Citation]:
    return list(Citation.objects.filter(message__public_id=message_id).order_by("n"))


@pytest.fixture
def conversation(alice) -> Conversation:
    return services.create_conversation(alice)


@pytest.fixture
def alice_headers(alice) -> list:
    return session_headers(alice)


# --- who may connect ---------------------------------------------------------------------------


async def test_anonymous_socket_is_closed_with_4401(conversation):
    communicator = socket_for(conversation.public_id, [(b"host", b"testserver"), (b"origin", ORIGIN)])
    assert await close_code(communicator) == CLOSE_NOT_SIGNED_IN
    await communicator.disconnect()


async def test_bob_cannot_open_alices_conversation(conversation, bob):
    communicator = socket_for(conversation.public_id, await login_headers(bob))
    assert await close_code(communicator) == CLOSE_NOT_FOUND
    await communicator.disconnect()


async def test_unknown_conversation_is_closed_with_4404(alice_headers):
    communicator = socket_for(uuid.uuid4(), alice_headers)
    assert await close_code(communicator) == CLOSE_NOT_FOUND
    await communicator.disconnect()


async def test_session_socket_from_another_origin_is_refused(conversation, alice):
    communicator = socket_for(conversation.public_id, await login_headers(alice, origin=b"https://evil.example"))
    connected, _ = await communicator.connect(timeout=SLOW)
    assert not connected
    await communicator.disconnect()


async def test_session_socket_without_origin_is_refused(conversation, alice):
    communicator = socket_for(conversation.public_id, await login_headers(alice, origin=None))
    connected, _ = await communicator.connect(timeout=SLOW)
    assert not connected
    await communicator.disconnect()


async def test_token_socket_works_without_origin(conversation, alice_token):
    communicator = await open_socket(conversation.public_id, token_headers(alice_token))
    await communicator.send_json_to({"type": "hello"})
    event = await communicator.receive_json_from(timeout=SLOW)
    assert event["type"] == "error"
    assert "Unknown type" in event["message"]
    await communicator.disconnect()


async def test_wrong_token_is_closed_with_4401(conversation):
    communicator = socket_for(conversation.public_id, token_headers("kb_not-a-real-token"))
    assert await close_code(communicator) == CLOSE_NOT_SIGNED_IN
    await communicator.disconnect()


async def test_bobs_token_cannot_open_alices_conversation(conversation, bob_token):
    communicator = socket_for(conversation.public_id, token_headers(bob_token))
    assert await close_code(communicator) == CLOSE_NOT_FOUND
    await communicator.disconnect()


# --- bad frames ----------------------------------------------------------------------------------


BAD_FRAMES = [
    ("this is not json", "Malformed JSON"),
    ("[1, 2, 3]", "JSON object"),
    ('"ask"', "JSON object"),
    ('{"content": "no type"}', 'Missing "type"'),
    ('{"type": 3}', "Unknown type 3"),
    ('{"type": "dance"}', 'Unknown type "dance"'),
    ('{"type": "ask"}', "non-empty string"),
    ('{"type": "ask", "content": "   "}', "non-empty string"),
    ('{"type": "ask", "content": 42}', "non-empty string"),
    ('{"type": "ask", "content": "hi", "params": [1]}', "JSON object"),
    ('{"type": "ask", "content": "hi", "params": {"temperature": 5}}', "temperature"),
    ('{"type": "ask", "content": "hi", "params": {"top_k": 0}}', "top_k"),
    ('{"type": "ask", "content": "hi", "params": {"mode": "creative"}}', "mode"),
    ('{"type": "ask", "content": "hi", "params": {"max_tokens": 100000}}', "max_tokens"),
    ('{"type": "ask", "content": "hi", "params": {"colour": "blue"}}', "colour"),
    ('{"type": "regenerate"}', "Nothing to regenerate"),
]


async def test_bad_frames_get_error_events_change_nothing_and_the_socket_survives(conversation, alice_headers):
    communicator = await open_socket(conversation.public_id, alice_headers)
    for frame, expected in BAD_FRAMES:
        await communicator.send_to(text_data=frame)
        event = await communicator.receive_json_from(timeout=SLOW)
        assert event["type"] == "error", frame
        assert expected in event["message"], (frame, event["message"])
    await communicator.send_to(bytes_data=b"\x00\x01")
    event = await communicator.receive_json_from(timeout=SLOW)
    assert event == {"type": "error", "message": "Binary frames are not supported: send JSON text frames."}
    await communicator.send_to(text_data='{"type": "ask", "content": "' + "x" * 70000 + '"}')
    assert "too large" in (await communicator.receive_json_from(timeout=SLOW))["message"]
    await communicator.send_to(text_data='{"type": "ask", "content": "' + "why " * 1001 + '"}')
    assert "too long" in (await communicator.receive_json_from(timeout=SLOW))["message"]

    assert await messages_of(conversation) == []

    # Still usable: a real question gets a full answer (nothing matches: no documents at all).
    await communicator.send_json_to({"type": "ask", "content": OFF_TOPIC})
    events = await events_until_end(communicator)
    assert [e["type"] for e in events] == ["sources", "token", "done"]
    await communicator.disconnect()


async def test_stop_with_nothing_running_is_ignored(conversation, alice_headers):
    communicator = await open_socket(conversation.public_id, alice_headers)
    await communicator.send_json_to({"type": "stop"})
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@override_settings(LLM_MAX_TOKENS=4000)
async def test_a_question_too_long_for_the_context_is_refused_before_saving(conversation, alice_headers):
    communicator = await open_socket(conversation.public_id, alice_headers)
    question = "Tell me about the warranty terms " * 120  # about 3,900 characters, ~700 tokens
    await communicator.send_json_to({"type": "ask", "content": question, "params": {"max_tokens": 3900}})
    event = await communicator.receive_json_from(timeout=SLOW)
    assert event["type"] == "error"
    assert "too long" in event["message"]
    assert await messages_of(conversation) == []
    await communicator.disconnect()


# --- answers -------------------------------------------------------------------------------------


async def test_nothing_relevant_gets_the_honest_answer_without_the_model(conversation, alice_headers, zorblax_manual):
    communicator = await open_socket(conversation.public_id, alice_headers)
    await communicator.send_json_to({"type": "ask", "content": OFF_TOPIC})
    events = await events_until_end(communicator)
    assert events[0] == {"type": "sources", "sources": []}
    assert "".join(e["text"] for e in of_type(events, "token")) == prompting.NOT_FOUND_ANSWER
    done = events[-1]
    assert done["type"] == "done" and done["status"] == "complete"
    assert done["stats"]["model"] == ""  # no model was called

    question, answer = await messages_of(conversation)
    assert (question.role, question.content) == (Role.USER, OFF_TOPIC)
    assert (answer.role, answer.content, answer.status) == (Role.ASSISTANT, prompting.NOT_FOUND_ANSWER, "complete")
    assert str(answer.public_id) == done["message"]
    assert list(answer.citations.all()) == []
    await communicator.disconnect()


@override_settings(LLM_MAX_TOKENS=24)
async def test_a_question_streams_a_cited_answer_and_both_messages_are_saved(
    conversation, alice_headers, zorblax_manual
):
    communicator = await open_socket(conversation.public_id, alice_headers)
    await communicator.send_json_to({"type": "ask", "content": ON_TOPIC})
    events = await events_until_end(communicator)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "done", events
    # sources and the quoted evidence come first, then queued events (if any), tokens, done.
    body = [k for k in kinds if k != "queued"]
    assert body[:2] == ["sources", "evidence"] and set(body[2:-1]) == {"token"}, kinds

    sources = of_type(events, "sources")[0]["sources"]
    assert sources, "the descaling passage should be retrieved"
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert any("every 40 days" in s["text"] for s in sources)
    first = sources[0]
    assert first["document"] == str(zorblax_manual.public_id)
    assert first["title"] == "Zorblax 3000 manual"
    assert first["location"].startswith("Zorblax 3000 manual ›")

    # The evidence is the descaling sentence, quoted from source 1 and highlighted there.
    evidence = of_type(events, "evidence")[0]
    assert evidence["source"] == 1 and "every 40 days" in evidence["text"]
    (highlight,) = first["highlight"]
    assert first["text"][highlight["start"] : highlight["end"]] == highlight["text"] == evidence["text"]

    text = "".join(e["text"] for e in of_type(events, "token"))
    assert text.strip()
    done = events[-1]
    assert done["status"] == "complete"
    # The saved answer is the streamed one, checked sentence by sentence (citations may be added).
    assert words(done["content"]) == words(text) or done["finish_reason"] == "loop"
    assert done["grounding"] and "".join(g["text"] for g in done["grounding"]).replace(" ", "") in done[
        "content"
    ].replace(" ", "")
    assert all(set(g) == {"text", "supported", "sources"} for g in done["grounding"])
    stats = done["stats"]
    assert stats["model"] and stats["prompt_tokens"] > 0
    assert 0 < stats["completion_tokens"] <= 24
    assert stats["ttft_ms"] >= 0 and stats["tokens_per_s"] >= 0

    question, answer = await messages_of(conversation)
    assert question.content == ON_TOPIC
    assert str(answer.public_id) == done["message"]
    assert answer.content == done["content"]
    assert answer.grounding == done["grounding"]
    assert answer.evidence == {"text": evidence["text"], "source": 1}
    assert answer.finish_reason == done["finish_reason"] in ("stop", "length", "loop")
    assert answer.status == MessageStatus.COMPLETE
    assert answer.model == stats["model"]
    assert answer.prompt_tokens == stats["prompt_tokens"]
    assert answer.completion_tokens == stats["completion_tokens"]
    assert answer.params["mode"] == "greedy" and answer.params["max_tokens"] == 24
    citations = await citations_of(done["message"])
    assert [(c.n, c.title, c.location, c.text, c.highlight) for c in citations] == [
        (s["n"], s["title"], s["location"], s["text"], s["highlight"]) for s in sources
    ]
    assert all(c.chunk_id is not None for c in citations)
    await communicator.disconnect()


async def test_stop_mid_stream_saves_the_partial_answer_as_stopped(conversation, alice_headers, zorblax_manual):
    communicator = await open_socket(conversation.public_id, alice_headers)
    await communicator.send_json_to(
        {"type": "ask", "content": "Explain everything about the Zorblax 3000.", "params": {"max_tokens": 400}}
    )
    received: list[str] = []
    while True:
        event = await communicator.receive_json_from(timeout=SLOW)
        if event["type"] == "token":
            received.append(event["text"])
            break
    await communicator.send_json_to({"type": "stop"})
    events = await events_until_end(communicator)
    received += [e["text"] for e in of_type(events, "token")]
    done = events[-1]
    assert done["type"] == "done" and done["status"] == "stopped"
    assert done["stats"]["completion_tokens"] < 400

    answer = (await messages_of(conversation))[-1]
    assert str(answer.public_id) == done["message"]
    assert answer.status == MessageStatus.STOPPED
    assert answer.content == done["content"]
    assert words(answer.content) == words("".join(received))  # checked too: only [n] may be added
    assert answer.grounding == done["grounding"]
    assert answer.citations.count() >= 1  # the evidence is kept with the partial answer

    # The model is free again: the same socket answers the next question at once.
    await communicator.send_json_to({"type": "ask", "content": OFF_TOPIC})
    assert (await events_until_end(communicator))[-1]["type"] == "done"
    await communicator.disconnect()


async def test_disconnecting_mid_stream_saves_the_partial_answer_as_stopped(
    conversation, alice_headers, zorblax_manual
):
    communicator = await open_socket(conversation.public_id, alice_headers)
    await communicator.send_json_to(
        {"type": "ask", "content": "Explain everything about the Zorblax 3000.", "params": {"max_tokens": 400}}
    )
    received = []
    while not received:
        event = await communicator.receive_json_from(timeout=SLOW)
        if event["type"] == "token":
            received.append(event["text"])
    await communicator.disconnect(timeout=SLOW)

    question, answer = await messages_of(conversation)
    assert answer.status == MessageStatus.STOPPED
    assert answer.content.startswith(received[0])
    assert answer.completion_tokens < 400


@override_settings(LLM_PARALLEL=1)  # one answer at a time: the second waits
async def test_a_second_socket_waits_in_line_and_is_told_its_position(alice, alice_headers, zorblax_manual):
    first_conversation, second_conversation = await database_sync_to_async(
        lambda: (services.create_conversation(alice), services.create_conversation(alice))
    )()
    first = await open_socket(first_conversation.public_id, alice_headers)
    second = await open_socket(second_conversation.public_id, alice_headers)
    await first.send_json_to({"type": "ask", "content": ON_TOPIC, "params": {"max_tokens": 400}})
    while (await first.receive_json_from(timeout=SLOW))["type"] != "token":
        pass
    await second.send_json_to({"type": "ask", "content": ON_TOPIC, "params": {"max_tokens": 8}})
    # The waiting user reads the sources and the quoted evidence before the model is free.
    before = [await second.receive_json_from(timeout=SLOW) for _ in range(3)]
    assert [e["type"] for e in before] == ["sources", "evidence", "queued"]
    assert before[2] == {"type": "queued", "position": 1}

    await first.send_json_to({"type": "stop"})
    assert (await events_until_end(first))[-1]["status"] == "stopped"
    events = await events_until_end(second)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"}
    assert events[-1]["status"] == "complete"
    await first.disconnect()
    await second.disconnect()


async def test_a_second_ask_while_answering_is_refused_and_the_first_continues(
    conversation, alice_headers, zorblax_manual
):
    communicator = await open_socket(conversation.public_id, alice_headers)
    await communicator.send_json_to({"type": "ask", "content": ON_TOPIC, "params": {"max_tokens": 200}})
    await communicator.send_json_to({"type": "ask", "content": "And the warranty?"})
    events = []
    while not of_type(events, "error"):
        events.append(await communicator.receive_json_from(timeout=SLOW))
    assert "still being generated" in of_type(events, "error")[0]["message"]
    await communicator.send_json_to({"type": "stop"})
    rest = await events_until_end(communicator)
    assert rest[-1]["type"] == "done"
    messages = await messages_of(conversation)
    assert [m.content for m in messages if m.role == Role.USER] == [ON_TOPIC]
    await communicator.disconnect()


async def test_regenerate_adds_a_new_answer_to_the_last_question(conversation, alice_headers):
    communicator = await open_socket(conversation.public_id, alice_headers)
    await communicator.send_json_to({"type": "ask", "content": OFF_TOPIC})
    first = (await events_until_end(communicator))[-1]
    await communicator.send_json_to({"type": "regenerate"})
    second = (await events_until_end(communicator))[-1]
    assert second["type"] == "done" and second["message"] != first["message"]
    messages = await messages_of(conversation)
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT, Role.ASSISTANT]
    await communicator.disconnect()


async def test_params_of_an_ask_are_validated_used_and_remembered(conversation, alice_headers):
    communicator = await open_socket(conversation.public_id, alice_headers)
    params = {"mode": "sampling", "temperature": 0.4, "top_k": 20, "top_p": 0.8, "max_tokens": 50, "seed": 7}
    await communicator.send_json_to({"type": "ask", "content": OFF_TOPIC, "params": params})
    await events_until_end(communicator)
    # A later ask without params uses the remembered settings.
    await communicator.send_json_to({"type": "ask", "content": OFF_TOPIC})
    await events_until_end(communicator)
    await communicator.disconnect()

    await database_sync_to_async(conversation.refresh_from_db)()
    assert conversation.settings == params
    answers = [m for m in await messages_of(conversation) if m.role == Role.ASSISTANT]
    assert [a.params for a in answers] == [params, params]


@override_settings(LLM_MODEL_PATH="/nonexistent/model.gguf")
async def test_an_unavailable_model_gives_an_error_event_and_a_failed_answer(
    conversation, alice_headers, zorblax_manual
):
    communicator = await open_socket(conversation.public_id, alice_headers)
    await communicator.send_json_to({"type": "ask", "content": ON_TOPIC})
    events = await events_until_end(communicator)
    assert events[-1]["type"] == "error"
    assert "not found" in events[-1]["message"]
    question, answer = await messages_of(conversation)
    assert question.content == ON_TOPIC
    assert answer.status == MessageStatus.FAILED and "not found" in answer.error
    # The socket survives the failure.
    await communicator.send_json_to({"type": "ask", "content": OFF_TOPIC})
    assert (await events_until_end(communicator))[-1]["type"] == "done"
    await communicator.disconnect()


# --- prompt history ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_prompt_history_keeps_only_questions_with_complete_answers(alice):
    conversation = make_conversation(alice, exchanges=[("First?", "One."), ("Second?", "Two.")])
    services.append_user_message(conversation, "Third?")
    services.save_assistant_message(conversation, content="Thr", status=MessageStatus.STOPPED)
    current = services.append_user_message(conversation, "Fourth?")
    assert replayed(conversation, current, alice) == [("First?", "One."), ("Second?", "Two.")]
