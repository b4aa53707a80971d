"""Real server processes for tests that need them: daphne web servers and a qcluster worker
on loopback, against the test database (use them from ``transaction=True`` tests, whose
writes are committed and so visible to other processes)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import websockets
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def current_database_url() -> str:
    """A DATABASE_URL for the database this test process is using (the test database)."""
    s = connection.settings_dict
    host = s["HOST"] or ""
    if host.startswith("/"):
        host = quote(host, safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    auth = s["USER"] + (f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": current_database_url(),
            "DEBUG": "false",
            "SECRET_KEY": "live-test-not-secret",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "Q_SYNC": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class Process:
    """A child process in its own process group, so that it and its children (qcluster forks
    workers) can be stopped or killed together."""

    def __init__(self, args: list[str], env: dict[str, str], log_name: str, log_dir: Path):
        self.log_path = log_dir / f"{log_name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL the whole group: no clean-up runs, as when a node dies."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()


class WebServer(Process):
    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "web"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [
                sys.executable,
                "-m",
                "kb_site.serve",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "kb_site.asgi:application",
            ],
            env,
            name,
            log_dir,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"daphne exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"daphne did not become ready:\n{self.log()}")


class Worker(Process):
    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "worker"):
        super().__init__([sys.executable, "manage.py", "worker"], env, name, log_dir)


def wait_for(predicate, timeout: float, interval: float = 0.5, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


# -- talking to a running site (live servers here, or containers) ---------------------------


def upload(api: httpx.Client, name: str, data: bytes, content_type: str | None = None) -> str:
    """Upload one file through the API as ``api``'s user; the new document's id."""
    file = (name, data, content_type) if content_type else (name, data)
    response = api.post("/api/v1/documents/", files={"file": file})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def document_of(api: httpx.Client, doc_id: str) -> dict:
    """The document as the API shows it to ``api``'s user."""
    response = api.get(f"/api/v1/documents/{doc_id}/")
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_settled(api: httpx.Client, doc_id: str, timeout: float, message: str) -> dict:
    """The document once it is ready or failed."""
    return wait_for(
        lambda: (d := document_of(api, doc_id))["status"] in ("ready", "failed") and d, timeout=timeout, message=message
    )


def wait_until_partly_embedded(api: httpx.Client, doc_id: str, timeout: float, message: str) -> dict:
    """The document once some, but not necessarily all, of its chunks are embedded."""
    return wait_for(
        lambda: (d := document_of(api, doc_id))["status"] == "processing" and d["progress_done"] > 0,
        timeout=timeout,
        interval=0.1,
        message=message,
    )


def long_document(paragraphs: int) -> bytes:
    """A Markdown document of ``paragraphs`` sections: many chunks, so ingestion takes a while."""
    lines = ["# Field notes", ""]
    for i in range(paragraphs):
        lines += [
            f"## Plot {i}",
            "",
            f"Plot {i} was sown with variety {i * 7 % 13} on day {i % 30 + 1}. The soil moisture "
            f"reading was {i % 17 + 20} percent and the seedlings reached {i % 9 + 3} centimetres. "
            "Weeds were removed by hand and the drip line was checked for leaks along its length.",
            "",
        ]
    return "\n".join(lines).encode()


async def ask(url: str, conversation: str, token: str, question: str, timeout: float = 120) -> list[dict]:
    """Ask over the chat websocket; every event until ``done`` or ``error``."""
    events = []
    async with websockets.connect(
        f"{url.replace('http', 'ws', 1)}/ws/chat/{conversation}/",
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as socket_:
        await socket_.send(json.dumps({"type": "ask", "content": question, "params": {"mode": "greedy"}}))
        while True:
            event = json.loads(await asyncio.wait_for(socket_.recv(), timeout=timeout))
            events.append(event)
            if event["type"] in ("done", "error"):
                return events
