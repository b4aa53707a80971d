"""The embedded PostgreSQL 16 + pgvector server used when ``DATABASE_URL`` is unset.

It comes from the PyPI package ``pgserver``; its data lives under ``var/pgdata`` (git-ignored)
and is reused across runs. The server listens on a Unix socket only, never on a TCP port.

Contract:
- ``database_url()`` starts the server if it is not running (about 2 s), registers this
  process as a user of it, and returns a ``postgres://`` URL that ``dj-database-url`` reads.
  When the last registered process exits, pgserver stops the server cleanly.
- ``start_detached()`` starts it for a supervisor (``make run``, the test runner) that hands
  the URL to child processes through ``DATABASE_URL``, and ``stop()`` stops it.
Raises whatever ``pgserver`` raises when the server cannot start; its log is ``var/pgdata/log``.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

log = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parent.parent
PGDATA = BASE_DIR / "var" / "pgdata"
DATABASE_NAME = "kb"


def _to_django_url(uri: str) -> str:
    """Turn pgserver's ``postgresql://user:@/db?host=/socket/dir`` into a URL whose host is the
    percent-encoded socket directory, which is the form ``dj-database-url`` understands."""
    parts = urlsplit(uri)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    user = parts.username or "postgres"
    return f"postgres://{user}@{quote(socket_dir, safe='')}/{DATABASE_NAME}"


def _ensure_database(server) -> None:
    # DATABASE_NAME is a constant of this module, never user input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        log.info("created database %s in the embedded server", DATABASE_NAME)


def _server(cleanup_mode: str | None):
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; /tmp is fine for a socket.
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: production images never start it

    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(PGDATA, cleanup_mode=cleanup_mode)
    _ensure_database(server)
    return server


def database_url() -> str:
    """Start (or attach to) the embedded server for the life of this process."""
    return _to_django_url(_server("stop").get_uri())


def start_detached() -> str:
    """Start (or attach to) the embedded server and leave it running after this process."""
    return _to_django_url(_server(None).get_uri())


def stop() -> None:
    """Stop the embedded server if it runs. Safe to call when it does not."""
    import pgserver._commands as commands

    if not (PGDATA / "postmaster.pid").exists():
        return
    user = "pgserver" if _running_as_root() else None
    try:
        commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=user)
    except subprocess.CalledProcessError:
        log.warning("embedded postgres was not running")


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
