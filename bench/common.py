"""Plumbing shared by the bench parts: the bench database, Django start-up, the machine,
child processes (daphne, qcluster) and small timing helpers.

Every part runs in its own process against its own database ``kb_bench_<part>`` on the same
server as the project (the embedded Postgres when ``DATABASE_URL`` is unset), so a bench run
never touches the development data and the parts never see each other's documents. The
database is dropped and created again at the start of a part, except when the part is asked
to reuse a corpus it already holds (SciFact ``--reuse``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
LOGS_DIR = BASE_DIR / "var" / "bench-logs"  # the servers' output (var/ is git-ignored)
BENCH_SECRET_KEY = "bench-only-not-a-secret"
PARTS = ("scifact", "retrieval", "ingestion", "backends", "streaming", "answers")


def database_name(part: str) -> str:
    return f"kb_bench_{part}"


def url_for_database(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name`` (host, user and options kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def server_url() -> str:
    """The project's database URL: ``DATABASE_URL``, or the embedded server (started, or
    attached to, for the life of this process)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url and os.environ.get("DATABASE_URL_FILE"):
        url = Path(os.environ["DATABASE_URL_FILE"]).read_text().strip()
    if url:
        return url
    from kb_site import embedded_db

    return embedded_db.database_url()


def child_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a bench part and of the servers it starts: production-like settings
    (``DEBUG`` off, background tasks on the queue) against the bench database."""
    env = dict(os.environ)
    env.pop("DATABASE_URL_FILE", None)
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=BENCH_SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        Q_SYNC="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def connect(database_url: str, dbname: str | None = None):
    """A plain psycopg connection (autocommit) to the server of ``database_url``: to its
    database, or to ``dbname`` (e.g. ``postgres`` to create and drop databases)."""
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(database_url)
    return psycopg.connect(
        dbname=dbname or config["NAME"],
        host=config.get("HOST") or None,
        port=config.get("PORT") or None,
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        autocommit=True,
    )


def database_exists(database_url: str) -> bool:
    name = urlsplit(database_url).path.lstrip("/")
    with connect(database_url, "postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def recreate_database(database_url: str) -> None:
    """Drop the bench database named in ``database_url`` (if any) and create it empty."""
    name = urlsplit(database_url).path.lstrip("/")
    if not name.startswith("kb_bench"):
        raise RuntimeError(f"refusing to drop {name!r}: bench databases are named kb_bench_*")
    with connect(database_url, "postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    if not name.startswith("kb_bench"):
        raise RuntimeError(f"refusing to drop {name!r}: bench databases are named kb_bench_*")
    with connect(database_url, "postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django() -> None:
    """Start Django against ``DATABASE_URL`` (set by the caller) and apply migrations."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb_site.settings")
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def machine() -> dict:
    """The machine and software a run measured: CPU, cores, memory, versions, git commit."""
    import psutil

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "Django",
        "torch",
        "sentence-transformers",
        "llama_cpp_python",
        "pgvector",
        "psycopg",
        "django-q2",
        "daphne",
        "channels",
        "numpy",
    ):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "git": _git_commit(),
    }


def _git_commit() -> dict:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=BASE_DIR, capture_output=True, text=True, timeout=10)
        return result.stdout.strip() if result.returncode == 0 else ""

    try:
        return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "", "dirty": None}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(args: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a child in its own process group, its output in ``log_path``. Stop it with
    ``stop_process`` (in a ``finally``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process in stop_process
    process = subprocess.Popen(
        args,
        cwd=BASE_DIR,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the bench, which then stops the child cleanly
    )
    process._bench_log = log_file  # type: ignore[attr-defined]
    return process


def stop_process(process: subprocess.Popen | None, *, timeout: float = 15) -> None:
    """Stop ``process`` and its children: SIGTERM to its group, then SIGKILL after ``timeout``."""
    if process is None:
        return
    try:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        # Whatever the group leader left behind (qcluster's workers) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    finally:
        log_file = getattr(process, "_bench_log", None)
        if log_file is not None:
            log_file.close()


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


@contextlib.contextmanager
def stopwatch() -> Iterator[dict]:
    """``with stopwatch() as t: ...`` then ``t["seconds"]``."""
    timing: dict = {}
    start = time.perf_counter()
    try:
        yield timing
    finally:
        timing["seconds"] = time.perf_counter() - start


def say(message: str) -> None:
    """One line for the person watching, printed above the progress bars."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr; redrawn less often when stderr is a log file, not a terminal."""
    from tqdm import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5 if sys.stderr.isatty() else 15)
    return tqdm(iterable, **kwargs)


def site_command(port: int) -> list[str]:
    """How the bench starts the site: ``kb_site.serve`` (daphne with the request-body limits),
    as ``make run`` and every deployment start it, on loopback."""
    return [sys.executable, "-m", "kb_site.serve", "-b", "127.0.0.1", "-p", str(port), "kb_site.asgi:application"]
