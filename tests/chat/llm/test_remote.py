"""The remote backend against a real ``python -m llama_cpp.server`` on loopback, running the same
SmolLM2 GGUF: streaming, stop, the queue, token counts and failures; and the server's error
payloads turned into readable messages."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chat.llm import GenerationParams, LLMUnavailable, PromptTooLong, RemoteEngine, default_model_path, get_engine
from chat.llm.remote import _error_text
from chat.prompting import SYSTEM_PROMPT

slow = pytest.mark.slow  # a llama_cpp.server subprocess, or a socket nobody listens on

API_KEY = "test-llm-key"
GROUNDED = [
    {"role": "system", "content": SYSTEM_PROMPT},
    {
        "role": "user",
        "content": "Passages:\n\n[1] Zorbex telescope (page 2)\nThe Zorbex telescope was completed in 1987 on a "
        "mountain in northern Chile.\n\nQuestion: When was the Zorbex telescope completed?",
    },
]
COUNTING = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def llm_server():
    """llama_cpp.server on a free loopback port; always terminated, even when a test fails."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="llm-server-", suffix=".log")[1])
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(default_model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--api_key",
        API_KEY,
        # As deployed: a second request waits for the first instead of cutting it off.
        "--interrupt_requests",
        "false",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Server(url=f"http://127.0.0.1:{port}/v1", log=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"llama_cpp.server exited:\n{server.log_text()}"
            assert time.monotonic() < deadline, f"llama_cpp.server did not start:\n{server.log_text()}"
            try:
                response = httpx.get(f"{server.url}/models", headers={"Authorization": f"Bearer {API_KEY}"})
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


@pytest.fixture
def remote(settings, llm_server) -> RemoteEngine:
    settings.LLM_BASE_URL = llm_server.url
    settings.LLM_API_KEY = API_KEY
    settings.LLM_MODEL_NAME = "smollm2"
    settings.LLM_MODEL_PATH = ""
    settings.LLM_CONTEXT = 2048
    engine = get_engine()
    assert isinstance(engine, RemoteEngine)
    return engine


async def collect(generation) -> str:
    return "".join([piece async for piece in generation])


async def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


@slow
async def test_an_answer_streams_through_the_server(remote):
    generation = remote.stream(GROUNDED, GenerationParams(mode="greedy", max_tokens=60))
    pieces = [piece async for piece in generation]

    assert len(pieces) >= 5
    assert "1987" in "".join(pieces)
    stats = generation.stats
    assert stats["finish_reason"] == "stop"
    assert stats["model"] == "smollm2"
    assert stats["prompt_tokens"] == remote.count_prompt_tokens(GROUNDED)
    assert 0 < stats["completion_tokens"] < 60
    assert stats["ttft_ms"] >= 0


@slow
async def test_max_tokens_and_sampling_settings_reach_the_server(remote):
    generation = remote.stream(COUNTING, GenerationParams(mode="sampling", temperature=0.5, seed=3, max_tokens=6))
    answer = await collect(generation)

    assert generation.stats["finish_reason"] == "length"
    assert answer == await collect(
        remote.stream(COUNTING, GenerationParams(mode="sampling", temperature=0.5, seed=3, max_tokens=6))
    )


@slow
async def test_stopping_mid_stream_ends_the_servers_generation_and_serves_the_next_request(remote, llm_server):
    first = remote.stream(COUNTING, GenerationParams(max_tokens=500))
    positions: list[int] = []

    async def told(position: int) -> None:
        positions.append(position)

    pieces = [await anext(first)]
    second = remote.stream(GROUNDED, GenerationParams(max_tokens=60), on_queue_position=told)
    answering = asyncio.create_task(collect(second))
    await wait_for(lambda: positions == [1])
    pieces += [await anext(first), await anext(first)]
    await first.aclose()

    answer = await asyncio.wait_for(answering, 120)
    await wait_for(lambda: "Disconnected from client" in llm_server.log_text())
    assert first.stats["finish_reason"] == "cancelled"
    assert "".join(pieces).startswith("1")
    assert "1987" in answer
    assert second.stats["finish_reason"] == "stop"


@slow
async def test_with_the_gguf_at_hand_prompt_counts_match_the_servers_exactly(remote, settings, llm_server):
    settings.LLM_MODEL_PATH = str(default_model_path())
    exact = get_engine()
    assert isinstance(exact, RemoteEngine) and exact.exact_counts

    response = httpx.post(
        f"{llm_server.url}/chat/completions",
        json={"messages": GROUNDED, "max_tokens": 1},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=120,
    )

    assert exact.count_prompt_tokens(GROUNDED) == response.json()["usage"]["prompt_tokens"]
    # Without the GGUF the estimate errs on the safe side.
    assert remote.count_prompt_tokens(GROUNDED) >= exact.count_prompt_tokens(GROUNDED)
    assert remote.count_prompt_tokens(COUNTING) >= exact.count_prompt_tokens(COUNTING)
    assert remote.count_tokens(GROUNDED[1]["content"]) >= exact.count_tokens(GROUNDED[1]["content"])


@slow
async def test_a_prompt_too_long_for_the_context_is_refused_without_calling_the_server(remote):
    generation = remote.stream([{"role": "user", "content": "word " * 3000}], GenerationParams(max_tokens=10))

    with pytest.raises(PromptTooLong, match="2048"):
        await anext(generation)


@slow
async def test_a_wrong_api_key_is_reported_as_unavailable(remote, settings):
    settings.LLM_API_KEY = "not-the-key"

    with pytest.raises(LLMUnavailable, match=r"refused the API key \(HTTP 401\)"):
        await collect(get_engine().stream(COUNTING, GenerationParams(max_tokens=3)))


@slow
async def test_a_server_that_is_down_is_reported_as_unavailable_and_frees_the_queue(settings):
    settings.LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    settings.LLM_MODEL_PATH = ""
    settings.LLM_CONTEXT = 2048
    engine = get_engine()

    for _attempt in range(2):  # the second is not stuck behind the failed first
        generation = engine.stream(COUNTING, GenerationParams(max_tokens=3))
        with pytest.raises(LLMUnavailable, match="is unreachable"):
            await asyncio.wait_for(collect(generation), 30)
        assert generation.stats["finish_reason"] == "error"
    assert engine.queue_length == 0


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"error": {"message": "Requested tokens exceed context window", "type": "x"}}, "Requested tokens"),
        ({"error": "model not loaded"}, "model not loaded"),
        ({"detail": "Invalid API key"}, "Invalid API key"),
        (["unexpected", "shape"], "['unexpected', 'shape']"),
    ],
)
def test_the_servers_error_payloads_become_readable_text(payload, text):
    assert _error_text(payload).startswith(text)


def test_error_text_from_the_server_is_cut_to_a_readable_length():
    assert len(_error_text({"error": {"message": "x" * 5000}})) == 300
