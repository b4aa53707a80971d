"""Websocket authentication: the browser session (origin checked) or a Bearer token.

A browser always sends ``Origin`` on a websocket handshake, and cookies are ambient
authority, so a session-authenticated socket must come from an allowed origin (this stops
cross-site websocket hijacking). Scripts authenticate with ``Authorization: Bearer <token>``;
a token is not ambient, so such a handshake may omit ``Origin`` — but if it sends one, the
origin must still be allowed.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.contrib.auth.models import AnonymousUser

from accounts.services import bearer_token, token_for


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class TokenAuthMiddleware(BaseMiddleware):
    """Replace ``scope["user"]`` with the token's owner when an Authorization header is sent.

    A wrong token yields AnonymousUser (the consumer then refuses the socket), never a
    fallback to the session. ``scope["auth_method"]`` says which was used (``"token"`` or
    ``"session"``) and ``scope["api_token_id"]`` names the token, so that a long-lived socket
    can check later that it has not been revoked (``accounts.services.signed_in_user``).
    """

    async def __call__(self, scope, receive, send):
        header = _header(scope, b"authorization")
        if header is not None:
            token = await database_sync_to_async(token_for)(bearer_token(header) or "")
            user = token.user if token is not None else AnonymousUser()
            scope = dict(scope, user=user, auth_method="token", api_token_id=token.pk if token else None)
        else:
            scope = dict(scope, auth_method="session")
        return await super().__call__(scope, receive, send)


class OriginOrTokenValidator:
    """Allowed-hosts origin check, waived only for token handshakes that send no Origin."""

    def __init__(self, application):
        self.application = application
        self.checked = AllowedHostsOriginValidator(application)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and _header(scope, b"origin") is None:
            if _header(scope, b"authorization") is not None:
                return await self.application(scope, receive, send)
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.checked(scope, receive, send)


def websocket_stack(inner):
    """The full websocket stack: origin check, session auth, then token auth."""
    return OriginOrTokenValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)))
