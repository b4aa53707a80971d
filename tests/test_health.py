import pytest
from django.test import Client


def test_healthz_answers_for_any_host_header():
    response = Client(HTTP_HOST="10.1.2.3:8000").get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"


@pytest.mark.django_db
def test_readyz_reports_database_and_pgvector():
    response = Client(HTTP_HOST="10.1.2.3:8000").get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["database"] == "ok"
    assert body["pgvector"].count(".") == 2  # a version such as 0.6.2


@pytest.mark.django_db
def test_readyz_is_503_when_pgvector_is_missing():
    from django.db import connection

    # DDL is transactional in Postgres: the test's transaction rolls the extension (and the
    # columns and indexes that depend on it) back afterwards.
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION vector CASCADE")
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "database": "ok", "pgvector": "missing"}


def test_other_pages_still_reject_unknown_hosts():
    response = Client(HTTP_HOST="evil.example").get("/accounts/login/")
    assert response.status_code == 400
