"""How large a request body kb accepts, decided from the request line and headers alone.

Contract:

- ``body_limit(path, headers)`` is the most bytes of body a request may send: ``UPLOAD_MAX_BYTES``
  plus ``UPLOAD_FORM_OVERHEAD`` on the pages and API that take uploads, when the request carries
  credentials (a session cookie or an ``Authorization`` header); ``REQUEST_MAX_BYTES`` for
  everything else, uploads without credentials included (their view answers 401 or redirects
  to the login page, as it would anyway). ``path`` is the decoded URL path (the ASGI scope's
  ``path``); ``headers`` are ``(lower-case name, value)`` byte pairs (the scope's ``headers``).
  Credentials are only looked at, not checked: checking a session needs the database, and the
  point is to decide before the body arrives. A forged cookie buys at most the upload limit.
- ``too_large_body(limit)`` is the text of the 413 answer.
- ``BodyLimitMiddleware`` wraps an ASGI HTTP application and answers 413 once a body passes its
  limit, without reading further.

Two places enforce the limits. ``kb_site/serve.py`` runs daphne with a hook where the bytes
arrive, because daphne (twisted.web) reads a whole body before it calls the application, so
only the server can refuse it in time. ``BodyLimitMiddleware`` (in ``kb_site/asgi.py``) is the
same rule for any other ASGI server, and a second line of defence under daphne.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from django.conf import settings
from django.http.cookie import parse_cookie
from django.template.defaultfilters import filesizeformat
from django.urls import Resolver404, resolve

log = logging.getLogger(__name__)

# Room for the multipart envelope and the small fields sent beside the file (title, visibility,
# groups), so that a file just under UPLOAD_MAX_BYTES still arrives and gets the form's own
# friendly "too large" message rather than a bare 413.
UPLOAD_FORM_OVERHEAD = 64 * 1024

# Views whose requests carry an uploaded file. The admin's change page is not one: it edits only
# a document's title and readers (documents/admin.py), so it keeps the small limit.
UPLOAD_VIEWS = frozenset({"documents:upload", "api:documents", "admin:documents_document_add"})

Headers = Iterable[tuple[bytes, bytes]]


def body_limit(path: str, headers: Headers) -> int:
    """The most bytes of request body to accept for ``path`` (see the module docstring)."""
    if has_credentials(headers) and is_upload_path(path):
        return settings.UPLOAD_MAX_BYTES + UPLOAD_FORM_OVERHEAD
    return settings.REQUEST_MAX_BYTES


def has_credentials(headers: Headers) -> bool:
    """Whether the request presents a session cookie or an ``Authorization`` header (unchecked)."""
    for name, value in headers:
        if name == b"authorization" and value.strip():
            return True
        if name == b"cookie" and parse_cookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME):
            return True
    return False


def is_upload_path(path: str) -> bool:
    """Whether ``path`` is served by a view that takes an uploaded file."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.view_name in UPLOAD_VIEWS


def too_large_body(limit: int) -> bytes:
    """The body of a 413 answer for a request over ``limit`` bytes."""
    size = filesizeformat(limit).replace("\xa0", " ")
    return f"Request body too large: this address accepts at most {size}.\n".encode()


def declared_length(headers: Headers) -> int | None:
    """The ``Content-Length`` a request declares, or None (absent or not a number)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimitMiddleware:
    """ASGI middleware: a 413 for an HTTP request whose body passes ``body_limit``.

    A declared ``Content-Length`` over the limit is refused before the application runs. A body
    that passes the limit while it streams (chunked, or longer than declared) ends the
    application's reading with ``http.disconnect`` (Django then gives up on the request) and is
    answered with a 413, unless the application had already started its response.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        limit = body_limit(scope["path"], headers)
        declared = declared_length(headers)
        if declared is not None and declared > limit:
            log.warning("refused a %d-byte body for %s (limit %d)", declared, scope["path"], limit)
            await self._refuse(send, limit)
            return

        received = 0
        refused = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    log.warning("refused a body over %d bytes for %s", limit, scope["path"])
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused and not response_started:
                return  # the 413 below is the answer
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
        if refused and not response_started:
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = too_large_body(limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
