"""Sign-in throttling with django-axes: which address a sign-in comes from, and what a
successful sign-in clears.

Axes counts failed sign-ins (``authenticate()`` with a request: the site's sign-in page and the
admin's) per user name and per client address, each on its own, and refuses both once either
reaches ``LOGIN_FAILURE_LIMIT`` within ``LOGIN_COOLOFF_MINUTES`` (settings). The sign-in forms
show the lockout (``accounts.forms``). API tokens and websockets never call ``authenticate()``,
so they are not throttled, and a lockout does not end sessions that are already signed in.
"""

from __future__ import annotations

import ipaddress

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_lockout_message
from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The address to count a sign-in against (``AXES_CLIENT_IP_CALLABLE``).

    The peer's address (``REMOTE_ADDR``), unless ``TRUST_PROXY_HEADERS`` is on: then the entry of
    ``X-Forwarded-For`` that the outermost trusted proxy appended, ``TRUSTED_PROXY_COUNT`` from
    the right. Entries further left come from the client and prove nothing, so sending a
    different one with each attempt does not escape the count. A request with fewer entries did
    not come through the proxies (a probe, say) and counts against its peer.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    if not settings.TRUST_PROXY_HEADERS:
        return peer
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < settings.TRUSTED_PROXY_COUNT:
        return peer
    candidate = forwarded[-settings.TRUSTED_PROXY_COUNT]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:  # our proxy always writes an address; anything else is not from it
        return peer


def lockout_message() -> str:
    """What a refused sign-in shows (``AXES_COOLOFF_MESSAGE``)."""
    return str(get_lockout_message())


class SignInAttempts(AxesDatabaseHandler):
    """Axes' database handler, except for what a successful sign-in clears (``AXES_HANDLER``).

    A success clears the failures recorded against that user name, from every address: the
    user has shown they know the password. It does not clear failures against other names from
    the same address (axes' ``AXES_RESET_ON_SUCCESS`` would), so someone with an account of
    their own cannot reset the per-address count between guesses at other accounts.
    """

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        self.reset_attempts(username=user.get_username())
