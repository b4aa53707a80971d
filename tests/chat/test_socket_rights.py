"""What one user may do with chat sockets, and how long a socket keeps its rights: the per-user
limits, the round-robin queue seen from the sockets, and sockets whose sign-in ends (deactivated,
signed out, new password, token revoked, session expired, staff status removed). Through the real
ASGI router, with real MiniLM retrieval and the real SmolLM2 model."""

from __future__ import annotations

import contextlib
import datetime
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, Permission, User
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.utils import timezone

from accounts.models import ApiToken, hash_token
from accounts.services import create_api_token, revoke_api_token
from chat import llm, prompting, services
from chat.models import Conversation, MessageStatus, Role
from chat.protocol import CLOSE_NOT_SIGNED_IN, CLOSE_TOO_MANY_SOCKETS
from documents.models import Visibility
from tests.chat.factories import ZORBLAX_PASSAGES, make_document
from tests.chat.sockets import (
    OFF_TOPIC,
    ON_TOPIC,
    SLOW,
    close_code,
    events_until_end,
    login_headers,
    messages_of,
    of_type,
    open_socket,
    signed_in,
    socket_for,
    token_headers,
)
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)

SHORT = {"max_tokens": 4}  # these tests are about who gets an answer, not about its words
# For the tests of what a signal does at once: no periodic re-check during the test.
signals_only = override_settings(CHAT_SOCKET_RECHECK_SECONDS=3600)
# One answer at a time, so that later questions wait in line (the default generates several).
one_at_a_time = override_settings(LLM_PARALLEL=1)


@database_sync_to_async
def conversations_of(user, count: int = 1) -> list[Conversation]:
    return [services.create_conversation(user) for _ in range(count)]


async def closed_with(communicator: WebsocketCommunicator) -> tuple[int, list[dict]]:
    """Read until the server closes the socket: the close code, and the events sent before it."""
    events = []
    while True:
        message = await communicator.receive_output(timeout=SLOW)
        if message["type"] == "websocket.close":
            return message["code"], events
        events.append(json.loads(message["text"]))


async def still_open(communicator: WebsocketCommunicator) -> None:
    """The socket still reads frames and answers them (an unknown type gets an ``error``)."""
    await communicator.send_json_to({"type": "hello"})
    event = await communicator.receive_json_from(timeout=SLOW)
    assert event["type"] == "error" and "Unknown type" in event["message"]


async def until_queued(communicator: WebsocketCommunicator, position: int) -> list[dict]:
    """Events up to a ``queued`` event with ``position``."""
    events = []
    while not events or events[-1] != {"type": "queued", "position": position}:
        events.append(await communicator.receive_json_from(timeout=SLOW))
        assert events[-1]["type"] not in ("done", "error"), events
    return events


@contextlib.asynccontextmanager
async def model_busy():
    """Hold the model, as someone else's long answer would, until the block ends."""
    engine = await llm.aget_engine()
    lease = await engine._slot.acquire(owner="someone else")
    try:
        yield
    finally:
        lease.release()


@pytest.fixture
def shared_manual(alice):
    return make_document(alice, "Zorblax 3000 manual", ZORBLAX_PASSAGES, visibility=Visibility.SHARED)


# --- Limits per user ---------------------------------------------------------------------------


@override_settings(CHAT_MAX_SOCKETS_PER_USER=2)
async def test_a_socket_past_the_per_user_limit_is_closed_with_4429(alice, bob):
    (conversation,) = await conversations_of(alice)
    (bobs_conversation,) = await conversations_of(bob)
    headers = await login_headers(alice)
    first = await open_socket(conversation.public_id, headers)
    second = await open_socket(conversation.public_id, headers)

    third = socket_for(conversation.public_id, headers)
    assert await close_code(third) == CLOSE_TOO_MANY_SOCKETS
    await third.disconnect()

    # Another user is not counted against Alice, and a socket that closes frees its place.
    bobs = await open_socket(bobs_conversation.public_id, await login_headers(bob))
    await still_open(bobs)
    await first.disconnect()
    fourth = await open_socket(conversation.public_id, headers)
    await still_open(fourth)
    for communicator in (second, bobs, fourth):
        await communicator.disconnect()


@one_at_a_time
async def test_a_question_past_the_per_user_pending_limit_gets_an_error_and_is_not_saved(alice, bob, zorblax_manual):
    conversations = await conversations_of(alice, 3)
    headers = await login_headers(alice)
    sockets = [await open_socket(c.public_id, headers) for c in conversations]
    (bobs_conversation,) = await conversations_of(bob)
    bobs = await open_socket(bobs_conversation.public_id, await login_headers(bob))

    async with model_busy():
        for place, communicator in enumerate(sockets[:2], start=1):
            await communicator.send_json_to({"type": "ask", "content": ON_TOPIC, "params": SHORT})
            await until_queued(communicator, place)
        # The default allows two questions at a time per user: a third is refused.
        await sockets[2].send_json_to({"type": "ask", "content": ON_TOPIC, "params": SHORT})
        event = await sockets[2].receive_json_from(timeout=SLOW)
        assert event["type"] == "error"
        assert event["message"].startswith("You already have 2 questions waiting or being answered")
        assert await messages_of(conversations[2]) == []
        # Bob is not held back by Alice's questions (nothing of his is relevant: no model needed).
        await bobs.send_json_to({"type": "ask", "content": OFF_TOPIC})
        assert (await events_until_end(bobs))[-1]["type"] == "done"

    for communicator in sockets[:2]:
        assert (await events_until_end(communicator))[-1]["status"] == "complete"
    # Both answered: the third socket may ask now.
    await sockets[2].send_json_to({"type": "ask", "content": OFF_TOPIC})
    assert (await events_until_end(sockets[2]))[-1]["type"] == "done"
    for communicator in (*sockets, bobs):
        await communicator.disconnect()


@one_at_a_time
async def test_another_users_question_goes_ahead_of_a_users_second_one(alice, bob, shared_manual):
    first_conversation, second_conversation = await conversations_of(alice, 2)
    (bobs_conversation,) = await conversations_of(bob)
    headers = await login_headers(alice)
    first = await open_socket(first_conversation.public_id, headers)
    second = await open_socket(second_conversation.public_id, headers)
    bobs = await open_socket(bobs_conversation.public_id, await login_headers(bob))

    async with model_busy():
        await first.send_json_to({"type": "ask", "content": ON_TOPIC, "params": SHORT})
        await until_queued(first, 1)
        await second.send_json_to({"type": "ask", "content": ON_TOPIC, "params": SHORT})
        await until_queued(second, 2)
        await bobs.send_json_to({"type": "ask", "content": ON_TOPIC, "params": SHORT})
        # Bob's first question goes before Alice's second one.
        await until_queued(bobs, 2)
        await until_queued(second, 3)

    seconds = await events_until_end(second)
    bobs_events = await events_until_end(bobs)
    await events_until_end(first)
    assert of_type(bobs_events, "queued") == [{"type": "queued", "position": 1}]
    assert of_type(seconds, "queued")[-1] == {"type": "queued", "position": 1}
    bobs_answer = (await messages_of(bobs_conversation))[-1]
    alices_second_answer = (await messages_of(second_conversation))[-1]
    assert bobs_answer.created < alices_second_answer.created
    for communicator in (first, second, bobs):
        await communicator.disconnect()


# --- Sockets whose sign-in ends ----------------------------------------------------------------------


@database_sync_to_async
def deactivate(user: User) -> None:
    user.is_active = False
    user.save()


@database_sync_to_async
def token_named(raw: str) -> ApiToken:
    return ApiToken.objects.get(token_hash=hash_token(raw))


@signals_only
async def test_deactivating_a_user_closes_their_open_sockets_at_once(alice, alice_token):
    (conversation,) = await conversations_of(alice)
    by_session = await open_socket(conversation.public_id, await login_headers(alice))
    by_token = await open_socket(conversation.public_id, token_headers(alice_token))

    await deactivate(alice)

    assert (await closed_with(by_session))[0] == CLOSE_NOT_SIGNED_IN
    assert (await closed_with(by_token))[0] == CLOSE_NOT_SIGNED_IN
    await by_session.disconnect()
    await by_token.disconnect()


async def test_a_question_after_the_user_was_deactivated_elsewhere_closes_the_socket_and_saves_nothing(alice):
    (conversation,) = await conversations_of(alice)
    communicator = await open_socket(conversation.public_id, await login_headers(alice))
    # As another server process would: no signal reaches this one.
    await database_sync_to_async(User.objects.filter(pk=alice.pk).update)(is_active=False)

    await communicator.send_json_to({"type": "ask", "content": OFF_TOPIC})

    assert await closed_with(communicator) == (CLOSE_NOT_SIGNED_IN, [])
    assert await messages_of(conversation) == []
    await communicator.disconnect()


@signals_only
async def test_deleting_a_user_closes_their_open_sockets_at_once(alice):
    (conversation,) = await conversations_of(alice)
    communicator = await open_socket(conversation.public_id, await login_headers(alice))

    await database_sync_to_async(alice.delete)()

    assert (await closed_with(communicator))[0] == CLOSE_NOT_SIGNED_IN
    await communicator.disconnect()


@signals_only
async def test_signing_out_closes_the_sockets_of_that_session_only(alice):
    (conversation,) = await conversations_of(alice)
    laptop, laptop_headers = await database_sync_to_async(signed_in)(alice)
    _phone, phone_headers = await database_sync_to_async(signed_in)(alice)
    on_laptop = await open_socket(conversation.public_id, laptop_headers)
    on_phone = await open_socket(conversation.public_id, phone_headers)

    response = await database_sync_to_async(laptop.post)("/accounts/logout/")
    assert response.status_code == 302

    assert (await closed_with(on_laptop))[0] == CLOSE_NOT_SIGNED_IN
    await still_open(on_phone)
    await on_laptop.disconnect()
    await on_phone.disconnect()


@signals_only
async def test_changing_the_password_closes_the_sockets_signed_in_before(alice):
    (conversation,) = await conversations_of(alice)
    laptop, laptop_headers = await database_sync_to_async(signed_in)(alice)
    _phone, phone_headers = await database_sync_to_async(signed_in)(alice)
    on_laptop = await open_socket(conversation.public_id, laptop_headers)
    on_phone = await open_socket(conversation.public_id, phone_headers)
    new_password = "a new and longer passphrase 2024"

    response = await database_sync_to_async(laptop.post)(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert response.status_code == 302

    # The other browser's session no longer matches the password; the laptop's own session was
    # given a new key by Django, so its socket (opened with the old key) closes too.
    assert (await closed_with(on_phone))[0] == CLOSE_NOT_SIGNED_IN
    assert (await closed_with(on_laptop))[0] == CLOSE_NOT_SIGNED_IN
    await on_laptop.disconnect()
    await on_phone.disconnect()
    # Signing in again with the new password gives a working socket.
    await database_sync_to_async(alice.refresh_from_db)()
    again = await open_socket(conversation.public_id, await login_headers(alice))
    await still_open(again)
    await again.disconnect()


@signals_only
async def test_revoking_a_token_closes_the_socket_that_used_it_and_only_that_one(alice, alice_token):
    (conversation,) = await conversations_of(alice)
    other_token = await database_sync_to_async(create_api_token)(alice, "laptop")
    revoked = await open_socket(conversation.public_id, token_headers(alice_token))
    kept = await open_socket(conversation.public_id, token_headers(other_token))

    await database_sync_to_async(revoke_api_token)(await token_named(alice_token))

    assert (await closed_with(revoked))[0] == CLOSE_NOT_SIGNED_IN
    await still_open(kept)
    await revoked.disconnect()
    await kept.disconnect()


@override_settings(CHAT_SOCKET_RECHECK_SECONDS=0.2)
async def test_a_socket_whose_session_expired_is_closed_by_the_periodic_check(alice):
    (conversation,) = await conversations_of(alice)
    headers = await login_headers(alice)
    communicator = await open_socket(conversation.public_id, headers)
    cookie = dict(headers)[b"cookie"].decode()
    session_key = cookie.partition("=")[2]
    expired = timezone.now() - datetime.timedelta(minutes=1)

    # No signal and no frame from the client: only the socket's own periodic check can see this.
    await database_sync_to_async(Session.objects.filter(session_key=session_key).update)(expire_date=expired)

    assert (await closed_with(communicator))[0] == CLOSE_NOT_SIGNED_IN
    await communicator.disconnect()


@signals_only
async def test_an_answer_streaming_when_the_sign_in_ends_is_stopped_and_saved(alice, zorblax_manual):
    (conversation,) = await conversations_of(alice)
    laptop, headers = await database_sync_to_async(signed_in)(alice)
    communicator = await open_socket(conversation.public_id, headers)
    await communicator.send_json_to(
        {"type": "ask", "content": "Explain everything about the Zorblax 3000.", "params": {"max_tokens": 400}}
    )
    received = []
    while not received:
        event = await communicator.receive_json_from(timeout=SLOW)
        if event["type"] == "token":
            received.append(event["text"])

    await database_sync_to_async(laptop.post)("/accounts/logout/")

    code, events = await closed_with(communicator)
    assert code == CLOSE_NOT_SIGNED_IN
    assert of_type(events, "done") == []  # nothing more is sent to a socket that lost its rights
    question, answer = await messages_of(conversation)
    assert answer.status == MessageStatus.STOPPED
    assert answer.content.startswith(received[0])
    assert answer.completion_tokens < 400
    await communicator.disconnect()


@database_sync_to_async
def reader_of_every_document(kind: str) -> User:
    """A user who may read every document: as a superuser, or through a group's permission."""
    if kind == "superuser":
        return make_user("root", staff=True)
    reviewers = Group.objects.create(name="reviewers")
    reviewers.permissions.add(Permission.objects.get(codename="read_all_documents"))
    return make_user("reviewer", groups=[reviewers])


@database_sync_to_async
def take_away_reading_every_document(user: User, kind: str) -> None:
    # Neither change touches the password or the active flag: the socket stays signed in.
    if kind == "superuser":
        User.objects.filter(pk=user.pk).update(is_staff=False, is_superuser=False)
    else:
        user.groups.clear()


@pytest.mark.parametrize("kind", ["superuser", "group permission"])
async def test_losing_the_right_to_read_every_document_narrows_the_next_questions_retrieval(kind, zorblax_manual):
    # The manual is Alice's and private: only the right to read every document shows it to others.
    reader = await reader_of_every_document(kind)
    (conversation,) = await conversations_of(reader)
    communicator = await open_socket(conversation.public_id, await login_headers(reader))
    await communicator.send_json_to({"type": "ask", "content": ON_TOPIC, "params": SHORT})
    events = await events_until_end(communicator)
    assert of_type(events, "sources")[0]["sources"], "a reader of every document finds Alice's manual"

    await take_away_reading_every_document(reader, kind)
    await communicator.send_json_to({"type": "ask", "content": ON_TOPIC, "params": SHORT})
    events = await events_until_end(communicator)

    assert of_type(events, "sources")[0]["sources"] == []
    answers = [m for m in await messages_of(conversation) if m.role == Role.ASSISTANT]
    assert answers[-1].content == prompting.NOT_FOUND_ANSWER
    await communicator.disconnect()
