"""``credentials_changed``: something may have ended some of a user's sign-ins.

Sent once the change is committed, with ``user_id`` and ``ended_session``:

- the user signs out (Django's ``user_logged_out``): ``ended_session`` is the key of the session
  that ends. It is sent before Django deletes that session, so a receiver treats that session
  as ended rather than looking it up;
- the user is saved with a change that may end sign-ins (a deactivation, a new password: any
  save but one limited to fields other than ``is_active`` and ``password``), or deleted; or one
  of their API tokens is deleted (revoked): ``ended_session`` is None, and a receiver checks its
  credentials again with ``accounts.services.signed_in_user``.

The chat websocket (``chat.consumers``) listens, to close the sockets that lost their rights.
Changes made without model signals (``QuerySet.update()``, a session that expires, a change made
by another server process) are caught by each socket's periodic re-check instead.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from accounts.models import ApiToken

credentials_changed = Signal()  # user_id, ended_session

# A save limited to other fields (e.g. ``last_login`` at every sign-in) cannot end a sign-in.
SIGN_IN_FIELDS = frozenset({"is_active", "password"})


def _announce(user_id, ended_session: str | None = None) -> None:
    transaction.on_commit(
        lambda: credentials_changed.send(sender=None, user_id=user_id, ended_session=ended_session), robust=True
    )


@receiver(user_logged_out, dispatch_uid="accounts.signed_out")
def _signed_out(sender, request, user, **kwargs) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        _announce(user.pk, ended_session=session_key)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.user_saved")
def _user_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and not SIGN_IN_FIELDS & set(update_fields)):
        return
    _announce(instance.pk)


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.user_deleted")
def _user_deleted(sender, instance, **kwargs) -> None:
    _announce(instance.pk)


@receiver(post_delete, sender=ApiToken, dispatch_uid="accounts.token_deleted")
def _token_deleted(sender, instance, **kwargs) -> None:
    _announce(instance.user_id)
