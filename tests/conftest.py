"""Shared fixtures: personas (alice owns, bob is another user, carol shares a group with
alice, an admin) and small factories. Tests run on the real Postgres + pgvector."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from accounts.services import create_api_token

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _static_files_without_a_manifest(settings):
    """Tests render pages without running collectstatic first; production keeps the manifest
    storage (hashed names), which needs it."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def make_user(username: str, *, staff: bool = False, groups: list[Group] | None = None) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.com")
    if staff:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    for group in groups or []:
        user.groups.add(group)
    return user


@pytest.fixture
def team(db) -> Group:
    return Group.objects.create(name="team")


@pytest.fixture
def alice(db, team) -> User:
    return make_user("alice", groups=[team])


@pytest.fixture
def bob(db) -> User:
    return make_user("bob")


@pytest.fixture
def carol(db, team) -> User:
    return make_user("carol", groups=[team])


@pytest.fixture
def admin_user(db) -> User:
    return make_user("admin", staff=True)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice) -> Client:
    return client_for(alice)


@pytest.fixture
def bob_client(bob) -> Client:
    return client_for(bob)


@pytest.fixture
def admin_client_(admin_user) -> Client:
    return client_for(admin_user)


@pytest.fixture
def alice_token(alice) -> str:
    return create_api_token(alice, name="tests")


@pytest.fixture
def bob_token(bob) -> str:
    return create_api_token(bob, name="tests")
