"""The one package that talks to the LLM.

Two backends behind one interface (``engine.Engine``: its docstring is the contract), chosen by
settings:

- **local** (default, ``local.LocalEngine``): llama-cpp-python on CPU, in this process.
- **remote** (``LLM_BASE_URL`` set, ``remote.RemoteEngine``): an OpenAI-compatible server such
  as ``python -m llama_cpp.server``, streamed over HTTP.

The other modules: ``errors`` (what is raised), ``params`` (generation settings, importable
without loading a backend), ``queue`` (fair admission to the model: round-robin across users),
``chat_format`` (chat templates and token counting) and ``weights`` (the bundled model converted
into a type llama.cpp reads prompts fast in).

``get_engine()`` returns the process-wide ``Engine`` for the current settings, loading the model
the first time (seconds for a big GGUF: async code calls ``await aget_engine()``). It raises
``LLMUnavailable`` when the model file is missing or unreadable.

The backends are imported on first use (``get_engine()`` or one of their names from this
package), so importing ``chat.llm`` or ``chat.llm.params`` loads neither llama_cpp nor httpx.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from chat.llm.engine import Engine, Generation, Messages
from chat.llm.errors import InvalidParams, LLMError, LLMUnavailable, PromptTooLong
from chat.llm.params import DEFAULT_MAX_TOKENS, MODES, SEED_MAX, GenerationParams, remembered_params
from chat.llm.queue import QueueCallback

if TYPE_CHECKING:
    from chat.llm.local import LocalEngine, default_model_path, thread_count, usable_cores
    from chat.llm.remote import RemoteEngine

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MODES",
    "SEED_MAX",
    "Engine",
    "Generation",
    "GenerationParams",
    "InvalidParams",
    "LLMError",
    "LLMUnavailable",
    "LocalEngine",
    "Messages",
    "PromptTooLong",
    "QueueCallback",
    "RemoteEngine",
    "aget_engine",
    "default_model_path",
    "get_engine",
    "local_model_path",
    "remembered_params",
    "thread_count",
    "usable_cores",
]

# Names served by a backend module, imported the first time one is asked for.
_LAZY = {
    "LocalEngine": "chat.llm.local",
    "default_model_path": "chat.llm.local",
    "thread_count": "chat.llm.local",
    "usable_cores": "chat.llm.local",
    "RemoteEngine": "chat.llm.remote",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


_engines: dict[tuple, Engine] = {}
_engines_lock = threading.Lock()


@atexit.register
def _close_engines() -> None:
    # Free llama.cpp models while the interpreter is whole: Llama.__del__ during shutdown
    # prints "Exception ignored" noise once its module globals are gone.
    for engine in _engines.values():
        engine.close()
    _engines.clear()


def _config() -> tuple:
    return (
        settings.LLM_BASE_URL,
        settings.LLM_MODEL_PATH,
        settings.LLM_API_KEY or "",
        settings.LLM_MODEL_NAME,
        settings.LLM_CONTEXT,
        settings.LLM_THREADS,
        settings.LLM_PARALLEL,
        settings.LLM_BUNDLED_WEIGHTS,
        str(settings.LLM_CACHE_DIR),
    )


def local_model_path() -> Path:
    """The GGUF the local backend loads: ``LLM_MODEL_PATH`` as it is, or the bundled model in
    ``LLM_BUNDLED_WEIGHTS`` (``weights.bundled_model``: converted on first use)."""
    if settings.LLM_MODEL_PATH:
        return Path(settings.LLM_MODEL_PATH)
    from chat.llm import local, weights

    return weights.bundled_model(local.default_model_path(), settings.LLM_CACHE_DIR, settings.LLM_BUNDLED_WEIGHTS)


def get_engine() -> Engine:
    """The engine for the current settings, created once per process (thread-safe).

    Settings never change in production; tests that override them get an engine of their own.
    Failures (``LLMUnavailable``) are not cached, so fixing the file and retrying works.
    """
    key = _config()
    engine = _engines.get(key)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            base_url, model_path, api_key, model_name, context, threads, parallel, _, _ = key
            if base_url:
                from chat.llm import remote

                engine = remote.RemoteEngine(
                    base_url,
                    api_key=api_key,
                    model_name=model_name,
                    context=context,
                    tokenizer_path=Path(model_path) if model_path else None,
                )
            else:
                from chat.llm import local

                engine = local.LocalEngine(local_model_path(), context=context, threads=threads, parallel=parallel)
            _engines[key] = engine
    return engine


async def aget_engine() -> Engine:
    """``get_engine()`` for async code: the first call loads the model in a thread."""
    return await asyncio.to_thread(get_engine)
