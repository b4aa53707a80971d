"""Signing in and out, password change, sign-up, and API tokens."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import ApiToken, hash_token
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

DOCUMENTS_API = "/api/v1/documents/"


def sign_in(username: str, password: str):
    """The sign-in page's answer (302 when signed in). Through the page rather than
    ``Client.login()``, which authenticates without a request: sign-in throttling needs one."""
    return Client().post(reverse("accounts:login"), {"username": username, "password": password})


def test_sign_in_page_signs_alice_in_and_sends_her_on(alice):
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("documents:list")).status_code == 200


def test_sign_in_with_a_wrong_password_shows_an_error_and_stays_signed_out(alice):
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert client.get(reverse("documents:list")).status_code == 302


def test_pages_send_anonymous_visitors_to_sign_in(db):
    response = Client().get(reverse("documents:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_sign_out_ends_the_session(alice_client):
    response = alice_client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert alice_client.get(reverse("documents:list")).status_code == 302


def test_password_change_needs_the_old_password_and_then_the_new_one_works(alice, alice_client):
    url = reverse("accounts:password_change")
    assert alice_client.get(url).status_code == 200
    wrong = alice_client.post(
        url, {"old_password": "nope", "new_password1": "a-new-long-pass-42", "new_password2": "a-new-long-pass-42"}
    )
    assert wrong.status_code == 200
    assert "old password was entered incorrectly" in wrong.content.decode()

    response = alice_client.post(
        url, {"old_password": PASSWORD, "new_password1": "a-new-long-pass-42", "new_password2": "a-new-long-pass-42"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_change_done")
    assert sign_in("alice", "a-new-long-pass-42").status_code == 302
    assert sign_in("alice", PASSWORD).status_code == 200


def test_sign_up_is_a_404_when_it_is_off(db):
    with override_settings(SIGNUP_ENABLED=False):
        client = Client()
        assert client.get(reverse("accounts:signup")).status_code == 404
        response = client.post(
            reverse("accounts:signup"),
            {"username": "mallory", "password1": "a-long-pass-4242", "password2": "a-long-pass-4242"},
        )
        assert response.status_code == 404
        assert "Sign up" not in client.get(reverse("accounts:login")).content.decode()
    from django.contrib.auth.models import User

    assert not User.objects.filter(username="mallory").exists()


@override_settings(SIGNUP_ENABLED=True)
def test_sign_up_when_on_creates_an_ordinary_account_and_signs_in(db):
    client = Client()
    assert "Sign up" in client.get(reverse("accounts:login")).content.decode()
    response = client.post(
        reverse("accounts:signup"),
        {"username": "dave", "email": "", "password1": "a-long-pass-4242", "password2": "a-long-pass-4242"},
    )
    assert response.status_code == 302
    from django.contrib.auth.models import User

    dave = User.objects.get(username="dave")
    assert not dave.is_staff and not dave.is_superuser
    assert client.get(reverse("documents:list")).status_code == 200


@override_settings(SIGNUP_ENABLED=True)
def test_sign_up_refuses_mismatched_passwords_and_taken_names(alice):
    client = Client()
    response = client.post(
        reverse("accounts:signup"),
        {"username": "ALICE", "password1": "a-long-pass-4242", "password2": "different-pass-4242"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "already exists" in page
    assert "didn’t match" in page or "didn't match" in page


def test_create_api_token_command_prints_a_working_token_and_stores_only_its_hash(alice):
    out = StringIO()
    call_command("create_api_token", "alice", "--name", "laptop", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("kb_")
    token = ApiToken.objects.get(user=alice, name="laptop")
    assert token.token_hash == hash_token(raw)
    assert raw not in {token.token_hash, token.name}

    response = Client().get(DOCUMENTS_API, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used is not None


def test_create_api_token_for_an_unknown_user_fails_clearly(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no user named"):
        call_command("create_api_token", "nobody", stdout=StringIO())


def test_api_without_a_token_is_a_401(db):
    response = Client().get(DOCUMENTS_API)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "error" in response.json()


def test_api_with_a_wrong_token_is_a_401(alice_token):
    response = Client().get(DOCUMENTS_API, HTTP_AUTHORIZATION="Bearer kb_not-a-real-token")
    assert response.status_code == 401
    response = Client().get(DOCUMENTS_API, HTTP_AUTHORIZATION=f"Basic {alice_token}")
    assert response.status_code == 401


def test_a_deactivated_users_token_stops_working(alice, alice_token):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    response = Client().get(DOCUMENTS_API, HTTP_AUTHORIZATION=f"Bearer {alice_token}")
    assert response.status_code == 401


def test_tokens_page_shows_a_new_token_once_and_lists_it_without_the_secret(alice, alice_client):
    url = reverse("accounts:tokens")
    response = alice_client.post(url, {"name": "backup script"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=alice, name="backup script")
    raw = response.context["raw_token"]
    assert hash_token(raw) == token.token_hash
    assert raw in response.content.decode()
    assert response["Cache-Control"] == "no-store"

    again = alice_client.get(url).content.decode()
    assert "backup script" in again
    assert raw not in again
    assert Client().get(DOCUMENTS_API, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_revoking_a_token_makes_it_stop_working(alice, alice_client, alice_token):
    token = ApiToken.objects.get(user=alice)
    response = alice_client.post(reverse("accounts:revoke_token", args=[token.public_id]))
    assert response.status_code == 302
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert Client().get(DOCUMENTS_API, HTTP_AUTHORIZATION=f"Bearer {alice_token}").status_code == 401


def test_bob_cannot_see_or_revoke_alices_tokens(alice, alice_token, bob_client):
    token = ApiToken.objects.get(user=alice)
    assert "tests" not in bob_client.get(reverse("accounts:tokens")).context["tokens"].values_list("name", flat=True)
    response = bob_client.post(reverse("accounts:revoke_token", args=[token.public_id]))
    assert response.status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_token_admin_shows_the_hash_read_only_and_cannot_add(admin_client_, alice_token, alice):
    token = ApiToken.objects.get(user=alice)
    assert admin_client_.get(reverse("admin:accounts_apitoken_changelist")).status_code == 200
    change = admin_client_.get(reverse("admin:accounts_apitoken_change", args=[token.pk]))
    assert change.status_code == 200
    page = change.content.decode()
    assert token.token_hash in page
    assert 'name="token_hash"' not in page
    assert alice_token not in page
    assert admin_client_.get(reverse("admin:accounts_apitoken_add")).status_code == 403
