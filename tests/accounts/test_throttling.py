"""Sign-in throttling (django-axes, accounts/throttling.py): per user name and per client
address, on the site's sign-in page and the admin's, with the reason on the page; API tokens,
open sessions and chat sockets are not affected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import F
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from accounts.throttling import client_ip
from tests.accounts.test_auth import DOCUMENTS_API
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.66"
ELSEWHERE = "198.51.100.20"
PROXY = "10.0.3.7"  # the load balancer, as daphne sees it
LOCKED = "Too many failed sign-in attempts"
WRONG = "correct username and password"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Every attempt hashes a password; the default hasher would make these tests slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def limit() -> int:
    return settings.LOGIN_FAILURE_LIMIT


def attempt(username: str, password: str, *, address: str = ATTACKER, admin: bool = False, **headers):
    """One sign-in from ``address`` (the peer's address, ``REMOTE_ADDR``) with a fresh client."""
    url = reverse("admin:login") if admin else reverse("accounts:login")
    client = Client(REMOTE_ADDR=address, **headers)
    response = client.post(url, {"username": username, "password": password})
    response.signed_in = response.status_code == 302 and "_auth_user_id" in client.session
    return response


def refused_as_locked(response) -> bool:
    page = response.content.decode()
    return not response.signed_in and LOCKED in page and WRONG not in page


def fail(username: str, times: int, **kwargs) -> list:
    return [attempt(username, "not-the-password", **kwargs) for _ in range(times)]


def time_passes(minutes: float) -> None:
    """Move every recorded failure into the past, as if ``minutes`` had gone by."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))


def test_a_user_name_is_locked_after_the_limit_of_failures_even_from_many_addresses(alice, bob):
    responses = [attempt("alice", "not-the-password", address=f"198.51.100.{n}") for n in range(1, limit() + 1)]
    assert all(r.status_code == 200 and WRONG in r.content.decode() for r in responses[:-1])
    assert refused_as_locked(responses[-1]), "the failure that reaches the limit says so"

    # The right password, from an address that never failed, is refused too.
    response = attempt("alice", PASSWORD, address=ELSEWHERE)
    assert refused_as_locked(response)
    # Only that name: bob signs in from the same address.
    assert attempt("bob", PASSWORD, address=ELSEWHERE).signed_in


def test_an_address_is_locked_after_the_limit_of_failures_across_user_names(alice):
    # Password spraying: one guess at each of many names, all from one address.
    responses = [attempt(f"user{n}", "Summer2024!") for n in range(limit())]
    assert refused_as_locked(responses[-1])
    assert refused_as_locked(attempt("alice", PASSWORD, address=ATTACKER))
    # alice's own name was never guessed: from her own address she signs in.
    assert attempt("alice", PASSWORD, address=ELSEWHERE).signed_in


def test_the_sign_in_page_explains_the_lock_with_a_429(alice):
    fail("alice", limit())
    response = attempt("alice", PASSWORD)
    assert response.status_code == 429
    assert "accounts/login.html" in [t.name for t in response.templates]
    page = response.content.decode()
    minutes = settings.LOGIN_COOLOFF_MINUTES
    assert f"Too many failed sign-in attempts. Try again in {minutes} minutes." in page
    assert 'name="username"' in page, "the sign-in form is shown again"


def test_the_lock_ends_after_the_cool_off(alice):
    fail("alice", limit())
    cool_off = settings.LOGIN_COOLOFF_MINUTES

    time_passes(cool_off - 1)
    assert refused_as_locked(attempt("alice", PASSWORD, address=ELSEWHERE))
    # Attempts while locked are not counted, so they do not push the end of the lock back.
    time_passes(1.1)
    assert attempt("alice", PASSWORD, address=ELSEWHERE).signed_in


def test_the_admin_sign_in_is_throttled_too_and_shares_the_count(admin_user):
    responses = fail("admin", limit(), admin=True)
    assert all(r.status_code == 200 for r in responses)
    response = attempt("admin", PASSWORD, admin=True, address=ELSEWHERE)
    assert "admin/login.html" in [t.name for t in response.templates]
    assert refused_as_locked(response)
    assert refused_as_locked(attempt("admin", PASSWORD, address=ELSEWHERE))


def test_failures_at_the_site_lock_the_admin_sign_in(admin_user):
    fail("admin", limit())
    assert refused_as_locked(attempt("admin", PASSWORD, admin=True, address=ELSEWHERE))


def test_a_successful_sign_in_clears_the_failures_of_that_user_name(alice):
    fail("alice", limit() - 1)
    assert attempt("alice", PASSWORD).signed_in
    responses = fail("alice", limit() - 1)
    assert not any(LOCKED in r.content.decode() for r in responses)
    assert attempt("alice", PASSWORD).signed_in


def test_signing_in_to_ones_own_account_does_not_clear_an_addresss_guesses_at_others(alice):
    for n in range(limit() - 1):
        attempt(f"victim{n}", "Summer2024!")
    assert attempt("alice", PASSWORD).signed_in
    assert refused_as_locked(attempt("victim-last", "Summer2024!"))


def test_tokens_and_open_sessions_keep_working_while_a_name_is_locked(alice, alice_token):
    signed_in_before = client_for(alice)
    fail("alice", limit())
    assert refused_as_locked(attempt("alice", PASSWORD, address=ELSEWHERE))

    assert signed_in_before.get(reverse("documents:list")).status_code == 200
    assert Client().get(DOCUMENTS_API, HTTP_AUTHORIZATION=f"Bearer {alice_token}").status_code == 200


def socket_headers(user, token: str) -> list[list[tuple[bytes, bytes]]]:
    """Handshake headers for a chat socket: with a Bearer token, and with a session cookie."""
    client = client_for(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    host = (b"host", b"testserver")
    return [
        [host, (b"authorization", f"Bearer {token}".encode())],
        [host, (b"cookie", cookie.encode()), (b"origin", b"http://testserver")],
    ]


@pytest.mark.django_db(transaction=True)
async def test_chat_sockets_open_for_a_locked_user_with_a_token_or_a_session(alice, alice_token):
    from channels.testing import WebsocketCommunicator

    from kb_site.asgi import application
    from tests.chat.factories import make_conversation

    conversation = await database_sync_to_async(make_conversation)(alice)
    all_headers = await database_sync_to_async(socket_headers)(alice, alice_token)
    await database_sync_to_async(fail)("alice", limit())
    for headers in all_headers:
        communicator = WebsocketCommunicator(application, f"/ws/chat/{conversation.public_id}/", headers=headers)
        connected, _ = await communicator.connect(timeout=30)
        assert connected
        assert await communicator.receive_nothing(timeout=0.5), "the socket was closed"
        await communicator.disconnect()


def test_spoofed_forwarded_for_headers_are_ignored_unless_the_proxy_is_trusted(alice):
    for n in range(limit()):
        attempt("guess", "Summer2024!", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    # Every attempt counted against the peer's address, whatever the header said.
    assert refused_as_locked(attempt("alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200"))


@override_settings(TRUST_PROXY_HEADERS=True, TRUSTED_PROXY_COUNT=1)
def test_behind_a_trusted_proxy_each_client_is_counted_by_the_address_the_proxy_saw(alice):
    # The proxy appends the address it saw; entries to its left are the client's own words.
    for n in range(limit()):
        attempt("guess", "Summer2024!", address=PROXY, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {ATTACKER}")
    behind_proxy = {"address": PROXY}
    assert refused_as_locked(attempt("alice", PASSWORD, **behind_proxy, HTTP_X_FORWARDED_FOR=ATTACKER))
    # Another client behind the same proxy is not locked out with the attacker.
    assert attempt("alice", PASSWORD, **behind_proxy, HTTP_X_FORWARDED_FOR=ELSEWHERE).signed_in


def test_client_ip_reads_the_forwarded_address_only_when_trusted():
    factory = RequestFactory()
    request = factory.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"192.0.2.9, {ATTACKER}, 10.0.0.2")
    assert client_ip(request) == PROXY
    with override_settings(TRUST_PROXY_HEADERS=True, TRUSTED_PROXY_COUNT=1):
        assert client_ip(request) == "10.0.0.2"
    with override_settings(TRUST_PROXY_HEADERS=True, TRUSTED_PROXY_COUNT=2):
        assert client_ip(request) == ATTACKER
        # Fewer entries than proxies: the request did not come through them.
        assert client_ip(factory.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=ATTACKER)) == PROXY
    with override_settings(TRUST_PROXY_HEADERS=True, TRUSTED_PROXY_COUNT=1):
        assert client_ip(factory.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="1.2.3.4, junk")) == PROXY
        assert client_ip(factory.get("/", REMOTE_ADDR=PROXY)) == PROXY
