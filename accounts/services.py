"""Writes for accounts: creating and checking API tokens."""

from __future__ import annotations

import logging

from django.utils import timezone

from accounts.models import ApiToken, hash_token

log = logging.getLogger(__name__)


def create_api_token(user, name: str = "") -> str:
    """Create a token for ``user`` and return the raw token, which is never stored."""
    raw = ApiToken.generate()
    ApiToken.objects.create(user=user, name=name, token_hash=hash_token(raw))
    log.info("created API token for user %s", user.pk)
    return raw


def user_for_token(raw: str):
    """Return the active user owning ``raw``, or None. Updates the token's last use."""
    if not raw:
        return None
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or (now - token.last_used).total_seconds() > 60:
        token.last_used = now
        token.save(update_fields=["last_used"])
    return token.user


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
