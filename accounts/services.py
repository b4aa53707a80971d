"""Writes for accounts: creating and checking API tokens; whether a long-lived connection's
credentials still sign its user in."""

from __future__ import annotations

import logging
from importlib import import_module
from types import SimpleNamespace

from django.conf import settings
from django.contrib import auth
from django.utils import timezone

from accounts.models import ApiToken, hash_token

log = logging.getLogger(__name__)


def create_api_token(user, name: str = "") -> str:
    """Create a token for ``user`` and return the raw token, which is never stored."""
    raw = ApiToken.generate()
    ApiToken.objects.create(user=user, name=name, token_hash=hash_token(raw))
    log.info("created API token for user %s", user.pk)
    return raw


def token_for(raw: str) -> ApiToken | None:
    """The token ``raw`` whose owner is active (``token.user`` loaded), or None. Updates its last use."""
    if not raw:
        return None
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or (now - token.last_used).total_seconds() > 60:
        token.last_used = now
        token.save(update_fields=["last_used"])
    return token


def user_for_token(raw: str):
    """Return the active user owning ``raw``, or None. Updates the token's last use."""
    token = token_for(raw)
    return token.user if token is not None else None


class _SessionView(dict):
    """Session data for ``auth.get_user`` that is never written back: a check must not flush
    a stale session or give a valid one a new key (the browser holding it would lose it)."""

    def flush(self) -> None:
        pass

    def cycle_key(self) -> None:
        pass


def _user_for_session(session_key: str):
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    data = store.load()  # empty when the session is gone or expired
    user = auth.get_user(SimpleNamespace(session=_SessionView(data)))
    return user if user.is_authenticated else None


def signed_in_user(user_id, *, session_key: str | None = None, token_id: int | None = None):
    """The user ``user_id``, freshly loaded, if the credentials a connection signed in with still
    sign them in; otherwise None.

    A session (``session_key``) still signs its user in while it exists, has not expired, names
    that user, and carries the user's current session auth hash (so a password change ends it,
    as it ends the user's other sessions in Django) — and the user is active. A token
    (``token_id``, the ``ApiToken`` primary key) while it exists and its owner is active.
    Nothing is written, not even the session. Long-lived connections (the chat websocket) call
    this again before each use and now and then, because a user may be deactivated, sign out,
    change their password or revoke a token while the connection is open.
    """
    if token_id is not None:
        token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
        user = token.user if token is not None and token.user.is_active else None
    elif session_key:
        user = _user_for_session(session_key)
    else:
        user = None
    return user if user is not None and user.pk == user_id else None


def bearer_token(header_value: str | None) -> str | None:
    """Extract the token from an ``Authorization: Bearer <token>`` header value."""
    if not header_value:
        return None
    scheme, _, value = header_value.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def revoke_api_token(token: ApiToken) -> None:
    """Delete ``token``: calls made with it are refused from now on."""
    token.delete()
    log.info("revoked API token %s of user %s", token.public_id, token.user_id)
