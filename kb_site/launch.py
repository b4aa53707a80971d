"""`make run`: prepare the database and serve the site with its background worker.

Steps: start the embedded Postgres when DATABASE_URL is unset, migrate, create the first
admin, load the sample knowledge base on first run, then run daphne (HTTP + websockets) and
`manage.py qcluster` side by side. Ctrl-C (or SIGTERM) stops both, then the embedded Postgres (unless another process
still uses it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def manage(*args: str) -> None:
    subprocess.run([*MANAGE, *args], check=True, cwd=BASE_DIR)


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    if not os.environ.get("DATABASE_URL") and not os.environ.get("DATABASE_URL_FILE"):
        step("starting the embedded PostgreSQL 16 + pgvector (data in var/pgdata)")
        from kb_site import embedded_db

        # This process holds the server for its children, which get the URL. When it exits,
        # pgserver stops the server unless another process (a test run, say) still uses it.
        os.environ["DATABASE_URL"] = embedded_db.database_url()
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(signum=None, frame=None):  # noqa: ARG001 - signal handler signature
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        step("applying database migrations")
        manage("migrate", "--noinput")
        step("checking for an admin account")
        manage("ensure_admin")
        step("loading the sample knowledge base (first run only)")
        manage("load_sample_docs")
        step(f"serving on http://{host}:{port} with a background worker — Ctrl-C stops everything")
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "kb_site.serve", "-b", host, "-p", port, "kb_site.asgi:application"],
                cwd=BASE_DIR,
            )
        )
        # The worker's metrics, when METRICS_PORT is set, go to the next port: the web server has it.
        worker_env = dict(os.environ)
        if int(os.environ.get("METRICS_PORT") or 0):
            worker_env["METRICS_PORT"] = str(int(os.environ["METRICS_PORT"]) + 1)
        children.append(subprocess.Popen([*MANAGE, "worker"], cwd=BASE_DIR, env=worker_env))
        while not stopping:
            if any(child.poll() is not None for child in children):
                print("a server process exited; stopping the others", file=sys.stderr)
                break
            time.sleep(0.5)
        return 0 if stopping else 1
    except subprocess.CalledProcessError as exc:
        print(f"setup step failed: {' '.join(map(str, exc.cmd[1:]))}", file=sys.stderr)
        return 1
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
