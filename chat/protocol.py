"""The chat websocket's vocabulary: close codes, limits and the one definition of every event
the server sends. docs/websocket-protocol.md documents the same, for clients.

Events are plain dicts ready for ``send_json``; ``chat.answering`` and ``chat.consumers`` build
them only through these functions, so each shape is written once.
"""

from __future__ import annotations

from collections.abc import Sequence

from chat.models import GenerationStats, Message

CLOSE_NOT_SIGNED_IN = 4401
CLOSE_NOT_FOUND = 4404
MAX_FRAME_CHARS = 64 * 1024
CLIENT_TYPES = ("ask", "stop", "regenerate")


def queued(position: int) -> dict:
    """The answer waits for the model; ``position`` 1 means next."""
    return {"type": "queued", "position": position}


def sources(hits: Sequence) -> dict:
    """The passages given to the model, numbered 1..n as the answer cites them."""
    return {"type": "sources", "sources": [hit.as_source(n) for n, hit in enumerate(hits, start=1)]}


def token(text: str) -> dict:
    return {"type": "token", "text": text}


def done(message: Message, stats: GenerationStats) -> dict:
    """The answer is saved (complete or stopped)."""
    return {"type": "done", "message": str(message.public_id), "status": message.status, "stats": stats.as_dict()}


def error(text: str) -> dict:
    """Something went wrong; the socket stays open."""
    return {"type": "error", "message": text}
