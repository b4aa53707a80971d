"""Web pods share one llm server: a question from one pod must not cut off another pod's answer.

llama_cpp.server's default ``interrupt_requests=True`` ends the stream being generated as soon
as another request waits for the model. On Kubernetes every web pod talks to the one llm
Deployment, so pod B's question would end pod A's answer half-way. The ``llm`` role of the
image's entry point turns it off; here that role runs for real on loopback, with the
project's arguments, and two independent remote engines (two web pods: separate engines,
queues, HTTP clients and event loops, in two threads) ask at once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from chat.llm import GenerationParams, LLMUnavailable, RemoteEngine

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
API_KEY = "test-llm-key"
COUNTING = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]
HELLO = [{"role": "user", "content": "Say hello."}]
LONG_ANSWER_TOKENS = 96

pytestmark = pytest.mark.slow


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_llm_role(tmp_path: Path, *extra_args: str) -> tuple[subprocess.Popen, str, Path]:
    """``docker-entrypoint.sh llm`` as the llm Deployment runs it; its base URL once it answers."""
    port = free_port()
    key_file = tmp_path / "llm-api-key"
    key_file.write_text(API_KEY + "\n")
    env = {k: v for k, v in os.environ.items() if k not in {"HOST", "PORT", "LLM_API_KEY", "LLM_API_KEY_FILE"}}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TMPDIR=str(tmp_path),
        LLM_SERVER_HOST="127.0.0.1",
        LLM_SERVER_PORT=str(port),
        LLM_API_KEY_FILE=str(key_file),
        LLM_MODEL_PATH="",
        LLM_MODEL_NAME="kb-llm",
        LLM_CONTEXT="2048",
        LLM_THREADS="1",
        # The shipped Q4_1 file: the long answer below counts on to its length with these weights.
        LLM_BUNDLED_WEIGHTS="shipped",
    )
    log = tmp_path / f"llm-{port}.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(ENTRYPOINT), "llm", *extra_args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None, f"the llm role exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the llm role did not start: {log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200:
                return server, url, log
        except httpx.TransportError:
            pass
        time.sleep(0.25)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


class WebPod(threading.Thread):
    """One web pod's engine asking one question in its own event loop; records what came back."""

    def __init__(self, url: str, messages: list[dict], max_tokens: int, *, started: threading.Event | None = None):
        super().__init__(daemon=True)
        self.engine = RemoteEngine(url, api_key=API_KEY, model_name="kb-llm", context=2048, tokenizer_path=None)
        self.messages = messages
        self.params = GenerationParams(mode="greedy", max_tokens=max_tokens)
        self.started_streaming = started or threading.Event()
        self.pieces: list[str] = []
        self.stats: dict = {}
        self.error: Exception | None = None
        self.sent_at = self.first_piece_at = self.done_at = 0.0

    def run(self) -> None:
        asyncio.run(self._ask())

    async def _ask(self) -> None:
        self.sent_at = time.monotonic()
        try:
            async for piece in self.engine.stream(self.messages, self.params, stats=self.stats):
                self.first_piece_at = self.first_piece_at or time.monotonic()
                self.pieces.append(piece)
                if len(self.pieces) == 5:
                    self.started_streaming.set()
        except LLMUnavailable as exc:
            self.error = exc
        finally:
            self.done_at = time.monotonic()
            self.started_streaming.set()


def ask_while_another_pod_streams(url: str) -> tuple[WebPod, WebPod]:
    """Pod A asks for a long answer; once 5 pieces have arrived, pod B asks a question."""
    pod_a = WebPod(url, COUNTING, LONG_ANSWER_TOKENS)
    pod_a.start()
    assert pod_a.started_streaming.wait(120), "pod A's answer never started"
    pod_b = WebPod(url, HELLO, 8)
    pod_b.start()
    pod_a.join(180)
    pod_b.join(180)
    assert not pod_a.is_alive() and not pod_b.is_alive()
    return pod_a, pod_b


def test_a_question_from_another_pod_waits_instead_of_cutting_the_answer_off(tmp_path):
    server, url, log = start_llm_role(tmp_path)  # the project's arguments, nothing added
    try:
        pod_a, pod_b = ask_while_another_pod_streams(url)
    finally:
        stop(server)
    # B's question reached the server while A's answer was still streaming...
    assert pod_b.sent_at < pod_a.done_at
    # ...and A's answer ran to its full length all the same; B was answered after it.
    assert pod_a.error is None, f"{pod_a.error}\n{log.read_text()[-2000:]}"
    assert pod_a.stats["finish_reason"] == "length"
    assert pod_a.stats["completion_tokens"] == LONG_ANSWER_TOKENS
    assert pod_b.error is None, pod_b.error
    assert "".join(pod_b.pieces).strip()
    assert pod_b.first_piece_at > pod_a.first_piece_at


def test_with_the_servers_default_the_other_pods_question_cuts_the_answer_off(tmp_path):
    # The same exchange against the server's default, interrupt_requests=True (the entry point
    # passes its arguments on after its own, so this one wins): A's stream is cut short. This
    # is what the test above would see without the entry point's setting.
    server, url, _ = start_llm_role(tmp_path, "--interrupt_requests", "true")
    try:
        pod_a, pod_b = ask_while_another_pod_streams(url)
    finally:
        stop(server)
    assert isinstance(pod_a.error, LLMUnavailable)
    assert "ended the stream before the answer was finished" in str(pod_a.error)
    assert len(pod_a.pieces) < LONG_ANSWER_TOKENS
    assert pod_b.error is None
