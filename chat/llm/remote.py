"""The remote backend: an OpenAI-compatible server, the only module that speaks HTTP.

Used when ``LLM_BASE_URL`` is set, e.g.
``python -m llama_cpp.server --model X.gguf --n_ctx N --interrupt_requests false``, streamed
from ``/v1/chat/completions`` with httpx. ``LLM_API_KEY`` is sent as a Bearer token and
``LLM_MODEL_NAME`` as ``model``. ``LLM_CONTEXT`` must equal the server's ``--n_ctx``: the
server does not report it.

Token counting: when ``LLM_MODEL_PATH`` is set next to ``LLM_BASE_URL`` (the same GGUF the
server runs), its tokenizer and chat template are loaded locally with ``vocab_only=True``:
counts are exact and cost no network round trip. Otherwise counts are a conservative estimate
(``chat_format._EstimatedChat``). llama_cpp.server's ``/extras/tokenize`` is deliberately not
used: it takes the same lock as generation, so counting the prompt of a queued request would
interrupt the answer being streamed (the server's default ``interrupt_requests``) or wait for it
to finish.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from chat.llm.chat_format import _EstimatedChat, _GGUFChat
from chat.llm.engine import Engine, Messages, _Done, _Piece, _Prepared
from chat.llm.errors import LLMError, LLMUnavailable, PromptTooLong
from chat.llm.local import LlamaInternals, _load_llama
from chat.llm.params import GenerationParams
from chat.llm.queue import Lease

log = logging.getLogger("chat.llm")

# Connecting must be quick; reading waits for prompt processing of a big model.
_HTTP_TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=30.0, pool=5.0)


class RemoteEngine(Engine):
    """An OpenAI-compatible ``/v1/chat/completions`` server, streamed over HTTP (SSE)."""

    def __init__(self, base_url: str, *, api_key: str, model_name: str, context: int, tokenizer_path: Path | None):
        super().__init__()
        base = base_url.rstrip("/")
        self._url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._model = model_name
        self.model_name = model_name or (tokenizer_path.name.removesuffix(".gguf") if tokenizer_path else "remote")
        self.context_size = context
        self._chat: _GGUFChat | None = None
        self._estimate = _EstimatedChat()
        if tokenizer_path is not None:
            self._chat = _GGUFChat(LlamaInternals(_load_llama(tokenizer_path, vocab_only=True)))
        log.info(
            "using the language model server %s (%s token counts)", self._url, "exact" if self._chat else "estimated"
        )

    def close(self) -> None:
        if self._chat is not None:
            self._chat.llama.close()

    @property
    def exact_counts(self) -> bool:
        return self._chat is not None

    def count_tokens(self, text: str) -> int:
        return self._chat.count(text) if self._chat else self._estimate.count(text)

    def _prepare(self, messages: Messages) -> _Prepared:
        if self._chat is not None:
            sent, prompt = self._chat.render(messages)
            return _Prepared(payload=sent, prompt_tokens=self._chat.count_prompt(prompt))
        defused = self._estimate.defuse(messages)
        return _Prepared(payload=defused, prompt_tokens=self._estimate.prompt_count(defused))

    async def _produce(
        self, prepared: _Prepared, params: GenerationParams, lease: Lease
    ) -> AsyncIterator[_Piece | _Done]:
        body: dict[str, Any] = {
            "messages": prepared.payload,
            "stream": True,
            "max_tokens": params.max_tokens,
            **params.sampler(),
        }
        if self._model:
            body["model"] = self._model
        if params.seed is not None:
            body["seed"] = params.seed
        pieces: list[str] = []
        try:
            async with (
                httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as client,
                client.stream("POST", self._url, json=body, headers=self._headers) as response,
            ):
                if response.status_code != 200:
                    await response.aread()
                    raise self._http_error(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators and ": ping" keep-alives
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise LLMUnavailable(f"The language model server failed: {_error_text(chunk)}")
                    choice = (chunk.get("choices") or [{}])[0]
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        pieces.append(text)
                        yield _Piece(text, len(pieces), time.perf_counter())
                    reason = choice.get("finish_reason")
                    if reason:
                        completion = self.count_tokens("".join(pieces)) if self._chat else len(pieces)
                        yield _Done("length" if reason == "length" else "stop", completion)
                        return
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(f"The language model server at {self._url} timed out ({type(exc).__name__}).") from exc
        except httpx.TransportError as exc:
            raise LLMUnavailable(
                f"The language model server at {self._url} is unreachable ({type(exc).__name__}: {exc})."
            ) from exc
        except json.JSONDecodeError as exc:
            raise LLMUnavailable("The language model server sent a malformed stream.") from exc
        # llama_cpp.server answers 200 and then ends the stream when the prompt overflows its context.
        raise LLMUnavailable(
            "The language model server ended the stream before the answer was finished "
            "(does LLM_CONTEXT match the server's --n_ctx?)."
        )

    def _http_error(self, response: httpx.Response) -> LLMError:
        try:
            detail = _error_text(response.json())
        except ValueError:
            detail = response.text[:300]
        if response.status_code in (401, 403):
            return LLMUnavailable(f"The language model server refused the API key (HTTP {response.status_code}).")
        if "context" in detail.lower() and response.status_code == 400:
            return PromptTooLong(f"The prompt does not fit the model's context: {detail}")
        return LLMUnavailable(f"The language model server answered HTTP {response.status_code}: {detail}")


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail", payload))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:300]
    return str(payload)[:300]
