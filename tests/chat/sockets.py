"""Helpers for chat websocket tests: sockets through the real ASGI router (origin check,
session and token auth), signed in as a persona."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from chat.models import Conversation, Message
from kb_site.asgi import application

ORIGIN = b"http://testserver"
ON_TOPIC = "How often must the Zorblax 3000 be descaled?"
OFF_TOPIC = "Who painted the ceiling of the Sistine Chapel?"
# Generous: the first test to run loads MiniLM and SmolLM2 on a shared 2-core machine.
SLOW = 120


def signed_in(user, *, origin: bytes | None = ORIGIN) -> tuple[Client, list[tuple[bytes, bytes]]]:
    """A browser signed in as ``user`` (a session of its own) and its socket handshake headers."""
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    headers = [(b"host", b"testserver"), (b"cookie", cookie.encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    return client, headers


def session_headers(user, *, origin: bytes | None = ORIGIN) -> list[tuple[bytes, bytes]]:
    return signed_in(user, origin=origin)[1]


login_headers = database_sync_to_async(session_headers)


def token_headers(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())]


def socket_for(conversation_id, headers) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/chat/{conversation_id}/", headers=headers)


async def open_socket(conversation_id, headers) -> WebsocketCommunicator:
    communicator = socket_for(conversation_id, headers)
    connected, _ = await communicator.connect(timeout=SLOW)
    assert connected
    return communicator


async def close_code(communicator: WebsocketCommunicator) -> int:
    """Refused sockets are accepted and closed at once, so a browser can read the code."""
    connected, _ = await communicator.connect(timeout=SLOW)
    assert connected
    message = await communicator.receive_output(timeout=SLOW)
    assert message["type"] == "websocket.close"
    return message["code"]


async def events_until_end(communicator: WebsocketCommunicator) -> list[dict]:
    """Server events up to and including ``done`` or ``error``."""
    events = []
    while True:
        event = await communicator.receive_json_from(timeout=SLOW)
        events.append(event)
        if event["type"] in ("done", "error"):
            return events


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


@database_sync_to_async
def messages_of(conversation: Conversation) -> list[Message]:
    return list(conversation.messages.order_by("created", "pk").prefetch_related("citations"))
