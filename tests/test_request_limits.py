"""Request bodies are refused with 413 as they arrive, before they can fill memory or disk
(issue 11, finding 2): uploads by signed-in users get UPLOAD_MAX_BYTES plus form overhead,
everything else (and anything without credentials) REQUEST_MAX_BYTES.

The live tests run the real server (``python -m kb_site.serve``, as every deployment does)
and talk to it over raw sockets, reading its answer while they are still sending, because a
server that refuses a body does not wait for the rest of it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest
from django.contrib.auth.models import User

from accounts.services import create_api_token
from kb_site.limits import UPLOAD_FORM_OVERHEAD, BodyLimitMiddleware, body_limit, too_large_body
from tests.live import ROOT, WebServer, child_env

MiB = 1024 * 1024
# Small limits keep the live tests quick; the defaults (1 MiB, 50 MB) follow the same code.
REQUEST_LIMIT = 128 * 1024
UPLOAD_LIMIT = 400_000
TRANSPORT_UPLOAD_LIMIT = UPLOAD_LIMIT + UPLOAD_FORM_OVERHEAD

LOGIN = "/accounts/login/"
API_UPLOAD = "/api/v1/documents/"
SITE_UPLOAD = "/documents/upload/"


# -- which limit applies ----------------------------------------------------------------------


@pytest.fixture
def limits(settings):
    settings.REQUEST_MAX_BYTES = REQUEST_LIMIT
    settings.UPLOAD_MAX_BYTES = UPLOAD_LIMIT


SESSION = [(b"cookie", b"csrftoken=abc; sessionid=xyz")]
TOKEN = [(b"authorization", b"Bearer kb_123")]


@pytest.mark.parametrize(
    ("path", "headers", "limit"),
    [
        (LOGIN, [], REQUEST_LIMIT),
        (LOGIN, SESSION, REQUEST_LIMIT),
        (API_UPLOAD, [], REQUEST_LIMIT),
        (API_UPLOAD, [(b"cookie", b"csrftoken=abc")], REQUEST_LIMIT),
        (API_UPLOAD, [(b"authorization", b"  ")], REQUEST_LIMIT),
        (API_UPLOAD, TOKEN, TRANSPORT_UPLOAD_LIMIT),
        (API_UPLOAD, SESSION, TRANSPORT_UPLOAD_LIMIT),
        (SITE_UPLOAD, SESSION, TRANSPORT_UPLOAD_LIMIT),
        (SITE_UPLOAD, [], REQUEST_LIMIT),
        ("/admin/documents/document/add/", SESSION, TRANSPORT_UPLOAD_LIMIT),
        ("/admin/documents/document/1/change/", SESSION, REQUEST_LIMIT),
        ("/api/v1/conversations/", TOKEN, REQUEST_LIMIT),
        ("/documents/upload/extra/", SESSION, REQUEST_LIMIT),
        ("/nowhere", TOKEN, REQUEST_LIMIT),
    ],
)
def test_only_signed_in_uploads_get_the_upload_limit(limits, path, headers, limit):
    assert body_limit(path, headers) == limit


# -- the ASGI guard, without a server ---------------------------------------------------------


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


class Body:
    """An ASGI ``receive`` that streams ``total`` bytes in 64 KiB messages and counts them."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.given = 0

    async def __call__(self) -> dict:
        size = min(64 * 1024, self.left)
        self.left -= size
        self.given += size
        return {"type": "http.request", "body": b"x" * size, "more_body": self.left > 0}


class Replies(list):
    async def __call__(self, message: dict) -> None:
        self.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self if m["type"] == "http.response.start")


async def test_the_asgi_guard_answers_413_to_a_declared_oversized_body_without_running_the_app(limits):
    ran = []

    async def app(scope, receive, send):
        ran.append(scope)

    async def receive():
        raise AssertionError("the body must not be read")

    replies = Replies()
    await BodyLimitMiddleware(app)(http_scope(LOGIN, [(b"content-length", b"3000000000")]), receive, replies)
    assert ran == []
    assert replies.status == 413
    assert replies[-1]["body"] == too_large_body(REQUEST_LIMIT)


async def test_the_asgi_guard_cuts_off_a_streamed_body_once_it_passes_the_limit(limits):
    async def echo(scope, receive, send):
        # Reads like Django: until the last message, or a disconnect.
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    body = Body(200 * MiB)
    replies = Replies()
    await BodyLimitMiddleware(echo)(http_scope(LOGIN, []), body, replies)
    assert replies.status == 413
    assert body.given <= REQUEST_LIMIT + 64 * 1024  # read no further than the message that passed it

    within = Body(REQUEST_LIMIT)
    replies = Replies()
    await BodyLimitMiddleware(echo)(http_scope(LOGIN, []), within, replies)
    assert replies.status == 200
    assert replies[-1]["body"] == str(REQUEST_LIMIT).encode()


async def test_the_site_application_answers_413_to_an_anonymous_oversized_body(limits):
    from kb_site.asgi import application

    body = Body(50 * MiB)
    replies = Replies()
    await application(http_scope(LOGIN, [(b"content-type", b"application/x-www-form-urlencoded")]), body, replies)
    assert replies.status == 413
    assert body.given < 1 * MiB


# -- the live server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("request-limits")
    env = child_env(
        REQUEST_MAX_BYTES=str(REQUEST_LIMIT), UPLOAD_MAX_BYTES=str(UPLOAD_LIMIT), STATIC_ROOT=str(folder / "static")
    )
    # Pages need the static files' manifest when DEBUG is off, as in production.
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    web = WebServer(env, folder)
    yield web
    web.stop()


class Exchange:
    """One request over a raw socket: the head, then the body while the answer is read."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.answer = bytearray()
        self.closed = threading.Event()  # the server closed the connection (or reset it)
        self.sent = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while data := self.sock.recv(65536):
                self.answer.extend(data)
        except OSError:
            pass
        self.closed.set()

    def send(self, head: bytes, body_parts=()) -> Exchange:
        """Send until the parts run out, the server closes the connection, or writing fails."""
        try:
            self.sock.sendall(head)
            for part in body_parts:
                if self.closed.is_set():
                    break
                self.sock.sendall(part)
                self.sent += len(part)
        except OSError:
            pass
        return self

    def finish(self, timeout: float = 20) -> bytes:
        """The answer, once the server has closed the connection (or ``timeout`` passed)."""
        self.closed.wait(timeout)
        self.sock.close()
        return bytes(self.answer)

    @property
    def status(self) -> int | None:
        line = bytes(self.answer).split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 else None


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(total: int, size: int = 64 * 1024):
    """A chunked-encoded body of ``total`` bytes, made as it is sent."""
    part = b"%x\r\n" % size + b"a" * size + b"\r\n"
    for _ in range(total // size):
        yield part
    yield b"0\r\n\r\n"


@pytest.mark.slow
def test_a_declared_oversized_body_to_the_login_page_is_refused_before_it_is_sent(server):
    head = request_head(
        LOGIN,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(3 * 1024**3),
            "Expect": "100-continue",
        },
    )
    exchange = Exchange(server.port).send(head)  # and not one byte of the body
    answer = exchange.finish()
    assert exchange.closed.is_set(), "the server is still waiting for the body"
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]  # no "100 Continue" first
    assert b"Connection: close" in answer
    assert answer.endswith(too_large_body(REQUEST_LIMIT))


@pytest.mark.slow
def test_an_anonymous_chunked_body_is_cut_off_early_and_the_server_memory_stays_flat(server):
    process = psutil.Process(server.popen.pid)
    httpx.post(f"{server.url}{LOGIN}", data={"username": "x"})  # everything a login POST loads
    baseline = process.memory_info().rss
    peak = baseline
    sending = threading.Event()
    sending.set()

    def watch():
        nonlocal peak
        while sending.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    head = request_head(LOGIN, {"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"})
    try:
        exchange = Exchange(server.port).send(head, chunked(200 * MiB))
        answer = exchange.finish()
        time.sleep(0.5)  # whatever the server does after answering, it does now
    finally:
        sending.clear()
        watcher.join()
    # Socket buffers on loopback hold a few MB that the server never read.
    assert exchange.sent < 32 * MiB, f"the server accepted {exchange.sent / MiB:.0f} MB"
    assert exchange.status == 413, answer[:200]
    assert (peak - baseline) < 50 * MiB, f"the server grew by {(peak - baseline) / MiB:.0f} MB"
    assert httpx.get(f"{server.url}{LOGIN}").status_code == 200  # and it serves others as before


@pytest.fixture
def alice_credentials(server, transactional_db):
    user = User.objects.create_user("alice", password="pw-alice-limits")
    # Signed in through the server itself: its sessions are signed with its own SECRET_KEY.
    with httpx.Client(base_url=server.url) as browser:
        browser.get(LOGIN)
        response = browser.post(
            LOGIN,
            data={
                "username": "alice",
                "password": "pw-alice-limits",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
        )
        assert response.status_code == 302, response.text[:500]
        session = browser.cookies["sessionid"]
    return {"token": create_api_token(user), "session": session}


def text_file(size: int) -> bytes:
    line = b"Plain words about greenhouses and tomatoes, written to fill an upload.\n"
    return (line * (size // len(line) + 1))[:size]


def multipart(fields: dict[str, str], file_name: str, data: bytes) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=fields, files={"file": (file_name, data, "text/plain")})
    return request.read(), request.headers["Content-Type"]


@pytest.mark.slow
def test_a_signed_in_upload_just_under_the_limit_is_stored(server, alice_credentials):
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {alice_credentials['token']}"})
    response = api.post(API_UPLOAD, files={"file": ("notes.txt", text_file(UPLOAD_LIMIT - 1000), "text/plain")})
    assert response.status_code == 201, response.text
    assert response.json()["size"] == UPLOAD_LIMIT - 1000

    # The site's form too (a session cookie, not a token): the file is stored, the page redirects.
    site = httpx.Client(base_url=server.url, cookies={"sessionid": alice_credentials["session"]})
    assert site.get(SITE_UPLOAD).status_code == 200
    response = site.post(
        SITE_UPLOAD,
        data={"visibility": "private", "csrfmiddlewaretoken": site.cookies["csrftoken"]},
        files={"file": ("other.txt", text_file(UPLOAD_LIMIT - 2000), "text/plain")},
    )
    assert response.status_code == 302, response.text[:500]


@pytest.mark.slow
def test_a_signed_in_upload_just_over_the_limit_is_refused_with_413(server, alice_credentials):
    site = httpx.Client(base_url=server.url, cookies={"sessionid": alice_credentials["session"]})
    site.get(SITE_UPLOAD)
    csrf = site.cookies["csrftoken"]
    fields = {"visibility": "private", "csrfmiddlewaretoken": csrf}
    body, content_type = multipart(fields, "notes.txt", text_file(TRANSPORT_UPLOAD_LIMIT))
    head = request_head(
        SITE_UPLOAD,
        {
            "Cookie": f"sessionid={alice_credentials['session']}; csrftoken={csrf}",
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
        },
    )
    exchange = Exchange(server.port).send(head)
    answer = exchange.finish()
    assert exchange.status == 413, answer[:300]
    assert answer.endswith(too_large_body(TRANSPORT_UPLOAD_LIMIT))

    # Streamed (chunked) with a token: cut off as soon as it passes the limit.
    head = request_head(
        API_UPLOAD,
        {
            "Authorization": f"Bearer {alice_credentials['token']}",
            "Content-Type": content_type,
            "Transfer-Encoding": "chunked",
        },
    )
    exchange = Exchange(server.port).send(head, chunked(200 * MiB))
    answer = exchange.finish()
    assert exchange.sent < 32 * MiB, f"the server accepted {exchange.sent / MiB:.0f} MB"
    assert exchange.status == 413, answer[:300]


@pytest.mark.slow
def test_an_upload_without_credentials_gets_the_small_limit(server, transactional_db):
    body, content_type = multipart({}, "notes.txt", text_file(REQUEST_LIMIT + 10_000))
    head = request_head(API_UPLOAD, {"Content-Type": content_type, "Content-Length": str(len(body))})
    exchange = Exchange(server.port).send(head, [body])
    answer = exchange.finish()
    assert exchange.status == 413, answer[:300]
    # Under the small limit, the view answers as it always has.
    small, content_type = multipart({}, "notes.txt", text_file(1000))
    response = httpx.post(f"{server.url}{API_UPLOAD}", content=small, headers={"Content-Type": content_type})
    assert response.status_code == 401
