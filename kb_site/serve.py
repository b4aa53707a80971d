"""Run daphne with kb's request-body limits enforced where the bytes arrive.

``python -m kb_site.serve ARGS`` takes exactly daphne's command-line arguments (``python -m
daphne ARGS``); every place that starts the web server uses it (``make run`` through
``kb_site/launch.py``, the image's ``web`` role, the live-server tests).

Why a hook in the server: twisted.web, under daphne, reads a request's whole body into memory or
a temporary file before daphne calls the ASGI application, so no middleware or view can refuse
a 3 GB body before it has been read. Here the HTTP channel asks ``kb_site.limits.body_limit``
once the headers are in, and:

- a declared ``Content-Length`` over the limit is answered 413 at once (before any ``100
  Continue``), and the connection closed without reading the body;
- a body that passes the limit while it arrives (chunked, say) is answered 413 as soon as it
  does, and the connection closed: nothing more is read or kept.

The channel speaks HTTP/1.1 only: kb serves plain HTTP behind a TLS-terminating proxy, and an
HTTP/2 connection (negotiated only over TLS) would go through a channel without these checks.
daphne has no setting for its HTTP factory, so ``install()`` replaces the one its ``Server``
builds; it fails loudly if a daphne upgrade moves that name.
"""

from __future__ import annotations

import logging
import os
import sys
from urllib.parse import unquote

import daphne.server  # first: it installs the asyncio reactor that twisted must use
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from twisted.web import http

from kb_site import limits, metrics

log = logging.getLogger("kb_site.serve")  # not "__main__" when run with -m


class LimitedHTTPChannel(http.HTTPChannel):
    """An HTTP/1.1 channel that refuses a request body over its limit as the bytes arrive."""

    _body_limit = 0
    _body_received = 0
    _refused = False

    def allHeadersReceived(self) -> None:  # noqa: N802 - twisted's name
        request = self.requests[-1]
        self._body_received = 0
        # ``self.length``: the declared Content-Length, None for a chunked body, 0 for none.
        if self.length != 0:
            self._body_limit = self._limit_for(request)
            if self.length is not None and self.length > self._body_limit:
                self._refuse(f"declared {self.length} bytes")
                return
        super().allHeadersReceived()

    def _limit_for(self, request: http.Request) -> int:
        # The request line's target: twisted keeps it on the channel until the body is in.
        target = getattr(self, "_path", b"")
        headers = [
            (name.lower(), value) for name, values in request.requestHeaders.getAllRawHeaders() for value in values
        ]
        try:
            # The path as daphne decodes it for the application's scope.
            path = unquote(target.split(b"?", 1)[0].decode("ascii"))
            return limits.body_limit(path, headers)
        except Exception:  # a target daphne itself refuses, or a bug: the small limit, never a crash
            log.exception("could not decide the body limit for %r", target[:200])
            return settings.REQUEST_MAX_BYTES

    def body_received(self, size: int) -> bool:
        """Count ``size`` more bytes of the current body; False (and the request refused) once
        the body passes its limit, or after it was refused."""
        if self._refused:
            return False
        self._body_received += size
        if self._body_received > self._body_limit:
            self._refuse(f"more than {self._body_limit} bytes arrived")
            return False
        return True

    def _refuse(self, why: str) -> None:
        self._refused = True
        target = getattr(self, "_path", b"?")[:200]
        log.warning("413 for %s: %s (limit %d bytes)", target.decode("ascii", "replace"), why, self._body_limit)
        body = limits.too_large_body(self._body_limit)
        self.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n"
            b"\r\n" % len(body) + body
        )
        # Stops reading at once; the answer is still written out before the socket closes.
        self.loseConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - twisted's name
        if not self._refused:
            super().dataReceived(data)

    def allContentReceived(self) -> None:  # noqa: N802 - twisted's name
        # A refused body never reaches the application, even if its end was already buffered.
        if not self._refused:
            super().allContentReceived()


class LimitedWebRequest(WebRequest):
    """daphne's request, keeping a body chunk only while the channel accepts it."""

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - twisted's name
        if self.channel.body_received(len(data)):
            super().handleContentChunk(data)


class LimitedHTTPFactory(HTTPFactory):
    """daphne's HTTP factory with ``LimitedHTTPChannel`` and ``LimitedWebRequest``."""

    protocol = LimitedHTTPChannel

    def buildProtocol(self, addr):  # noqa: N802 - twisted's name
        channel = super().buildProtocol(addr)
        channel.requestFactory = LimitedWebRequest
        return channel

    def acceptableProtocols(self) -> list[bytes]:  # noqa: N802 - twisted's name
        return [b"http/1.1"]


def install() -> None:
    """Make daphne's ``Server`` build ``LimitedHTTPFactory`` for its HTTP connections."""
    if not (isinstance(daphne.server.HTTPFactory, type) and issubclass(daphne.server.HTTPFactory, HTTPFactory)):
        raise RuntimeError("daphne.server.HTTPFactory moved: update kb_site/serve.py for this daphne version")
    daphne.server.HTTPFactory = LimitedHTTPFactory


def main(argv: list[str] | None = None) -> None:
    # Before daphne loads the application (and with it the settings): this process serves web
    # requests, so it pools its database connections (DB_POOL_SIZE in kb_site/settings.py).
    os.environ["KB_PROCESS"] = "web"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb_site.settings")
    install()
    metrics.serve("web")  # on METRICS_PORT, its own port (kb_site/metrics.py)
    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
