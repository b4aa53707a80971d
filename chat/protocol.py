"""The chat websocket's vocabulary: close codes, limits and the one definition of every event
the server sends. docs/websocket-protocol.md documents the same, for clients.

Events are plain dicts ready for ``send_json``; ``chat.answering`` and ``chat.consumers`` build
them only through these functions, so each shape is written once.
"""

from __future__ import annotations

from collections.abc import Sequence

from chat.models import GenerationStats, Message, numbered

# Close codes (a refused socket is accepted, then closed with one, so that a browser can read it).
CLOSE_NOT_SIGNED_IN = 4401  # not signed in, or the sign-in ended while the socket was open
CLOSE_NOT_FOUND = 4404  # no such conversation for this user
CLOSE_TOO_MANY_SOCKETS = 4429  # the user has CHAT_MAX_SOCKETS_PER_USER chat sockets open already
MAX_FRAME_CHARS = 64 * 1024
CLIENT_TYPES = ("ask", "stop", "regenerate", "scope")


def queued(position: int) -> dict:
    """The answer waits for the model; ``position`` 1 means next."""
    return {"type": "queued", "position": position}


def sources(hits: Sequence, highlights: Sequence[Sequence[dict]] = (), numbers: Sequence[int] = ()) -> dict:
    """The passages given to the model, each with its number in the conversation (``numbers[i]``
    for ``hits[i]``; default 1..n), as the answer cites it, and the sentences that answer the
    question (``highlights[i]``)."""
    return {
        "type": "sources",
        "sources": [hit.as_source(n, marks) for n, hit, marks in numbered(hits, highlights, numbers)],
    }


def evidence(text: str, source: int) -> dict:
    """The one source sentence that best answers the question, quoted before the model starts."""
    return {"type": "evidence", "text": text, "source": source}


def token(text: str) -> dict:
    return {"type": "token", "text": text}


def done(message: Message, stats: GenerationStats) -> dict:
    """The answer is saved (complete or stopped): its final text, checked sentence by sentence."""
    return {
        "type": "done",
        "message": str(message.public_id),
        "status": message.status,
        "finish_reason": message.finish_reason,
        "content": message.content,
        "grounding": message.grounding,
        "stats": stats.as_dict(),
    }


def scope(shown: dict) -> dict:
    """The conversation now asks this scope (``Conversation.scope_json``)."""
    return {"type": "scope", "scope": shown}


def error(text: str) -> dict:
    """Something went wrong; the socket stays open."""
    return {"type": "error", "message": text}
