"""A web process reuses its database connections (kb_site/settings.py, DB_POOL_SIZE).

Under ASGI each request's sync code runs on a thread of its own, so Django's persistent
connections were never reused: every request opened a new connection and Postgres started a
backend for it. The real server (``python -m kb_site.serve``) borrows from a pool instead; these
tests count the sessions Postgres opened for the test database while it served requests.
"""

from __future__ import annotations

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import connection

from accounts.services import create_api_token
from tests.live import WebServer, child_env

REQUESTS = 20


def sessions_opened() -> int:
    """Sessions Postgres has started for the current database so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # a fresh read, not this transaction's cached one
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def sessions_for_requests(tmp_path, **env: str) -> int:
    token = create_api_token(User.objects.create_user("alice"))
    web = WebServer(child_env(**env), tmp_path)
    try:
        with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {token}"}) as api:
            assert api.get("/api/v1/documents/").status_code == 200  # the pool opens
            before = sessions_opened()
            for _ in range(REQUESTS):
                assert api.get("/api/v1/documents/").status_code == 200
            return sessions_opened() - before
    finally:
        web.stop()


@pytest.mark.django_db(transaction=True)
def test_the_web_server_reuses_database_connections_across_requests(tmp_path):
    assert sessions_for_requests(tmp_path, DB_POOL_SIZE="4", DB_CONN_MAX_AGE="60") <= 2


@pytest.mark.django_db(transaction=True)
def test_without_the_pool_every_request_opens_a_connection(tmp_path):
    # The measurement above can tell the difference: with the pool off (DB_POOL_SIZE=0) the
    # same requests open a session each, even with connections meant to persist for a minute.
    assert sessions_for_requests(tmp_path, DB_POOL_SIZE="0", DB_CONN_MAX_AGE="60") >= REQUESTS
