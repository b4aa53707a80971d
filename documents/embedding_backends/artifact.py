"""The exported model the ONNX Runtime and OpenVINO backends run, built from the installed weights.

``ensure_built(model_dir, cache_dir)`` returns the folder holding the export of ``model_dir``:

- ``model-fp32.onnx``: the transformer exported with ``torch.onnx.export`` (last hidden state
  out; pooling and normalisation stay in NumPy, see ``base.GraphBackend``);
- ``model-int8.onnx``: the same graph with its MatMul weights quantised to int8 per output
  channel (``onnxruntime.quantization.quantize_dynamic``; per-tensor scales lose too much:
  cosine to the original about 0.94 instead of 0.995);
- ``manifest.json``: the fingerprint it was built from, the graph inputs, each file's sha256.

The folder is ``<cache_dir>/<model folder name>-<fingerprint>``. The fingerprint covers the
bytes of every file of the model folder, this recipe's version and the versions of the tools
that write the files, so a changed model or tool builds a new folder and a present, intact one
is used as it is (nothing is written then: a read-only file system is fine). A missing or
damaged one is built again: in a child process (torch is imported there, never in the caller,
so a web process that only embeds queries never loads torch), into a temporary folder that
is renamed into place once complete, under a file lock so that two processes never build at
once and neither sees half a build. Failures raise ``EmbeddingModelError`` saying why.

``python -m documents.embedding_backends.artifact MODEL_DIR OUT_DIR`` is that child process:
it writes the two graphs into OUT_DIR (no manifest; the parent checks and writes it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from documents.embedding_backends.base import EmbeddingModelError, ModelLayout
from kb_site.files import exclusive_lock, sha256_of

log = logging.getLogger(__name__)

# Bump when the export or quantisation below changes what they write.
RECIPE = "torch.onnx.export opset 17, last_hidden_state; quantize_dynamic int8 per-channel; v1"
FILES = {"fp32": "model-fp32.onnx", "int8": "model-int8.onnx"}
MANIFEST = "manifest.json"
_TOOLS = ("torch", "transformers", "onnx", "onnxruntime")
_BUILD_TIMEOUT = 900  # seconds; an export takes about 10 s on two cores


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def fingerprint(model_dir: Path) -> str:
    """Hex digest of the model folder's files, the recipe and the tools' versions."""
    digest = hashlib.sha256(RECIPE.encode())
    for tool in _TOOLS:
        digest.update(f"\n{tool}=={_version(tool)}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"\n{path.relative_to(model_dir).as_posix()}:{sha256_of(path)}".encode())
    return digest.hexdigest()


def artifact_dir(model_dir: Path, cache_dir: Path, print_: str | None = None) -> Path:
    """Where the export of ``model_dir`` lives (whether or not it is built yet)."""
    return cache_dir / f"{model_dir.name}-{(print_ or fingerprint(model_dir))[:20]}"


def check(folder: Path, print_: str) -> dict | None:
    """The manifest of a complete, intact build of fingerprint ``print_`` in ``folder``, else None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("fingerprint") != print_:
        return None
    for name, expected in (manifest.get("sha256") or {}).items():
        path = folder / name
        if not path.is_file() or sha256_of(path) != expected:
            log.warning("embedding export %s is damaged (%s); building it again", folder, name)
            return None
    return manifest if set(manifest.get("sha256") or {}) == set(FILES.values()) else None


def ensure_built(model_dir: Path, cache_dir: Path, *, force: bool = False) -> tuple[Path, dict, bool]:
    """``(folder, manifest, built_now)`` for the export of ``model_dir`` under ``cache_dir``."""
    print_ = fingerprint(model_dir)
    folder = artifact_dir(model_dir, cache_dir, print_)
    if not force and (manifest := check(folder, print_)) is not None:
        return folder, manifest, False
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddingModelError(
            f"the exported embedding model is missing and EMBEDDING_CACHE_DIR={str(cache_dir)!r} cannot be "
            f"created ({exc}): run `manage.py build_embedding_model` where it is writable (e.g. when building "
            "the image), or point EMBEDDING_CACHE_DIR at a writable folder"
        ) from exc
    with _locked(cache_dir / ".build.lock"):
        # Another process may have built it while this one waited for the lock.
        if not force and (manifest := check(folder, print_)) is not None:
            return folder, manifest, False
        manifest = _build(model_dir, cache_dir, folder, print_)
    return folder, manifest, True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(path))
        except OSError as exc:
            raise EmbeddingModelError(
                f"cannot build the exported embedding model in {path.parent} ({exc}): run "
                "`manage.py build_embedding_model` where it is writable, or set EMBEDDING_CACHE_DIR"
            ) from exc
        yield


def _build(model_dir: Path, cache_dir: Path, folder: Path, print_: str) -> dict:
    layout = ModelLayout.read(model_dir)
    started = time.monotonic()
    log.info("exporting the embedding model %s to %s", model_dir, folder)
    temporary = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_dir))
    try:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "documents.embedding_backends.artifact",
                str(layout.transformer_dir),
                str(temporary),
            ],
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
        if completed.returncode != 0:
            tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-5:])
            raise EmbeddingModelError(f"exporting the embedding model from {model_dir} failed: {tail}")
        inputs = json.loads(completed.stdout.strip().splitlines()[-1])["inputs"]
        missing = [name for name in FILES.values() if not (temporary / name).is_file()]
        if missing:
            raise EmbeddingModelError(f"exporting the embedding model from {model_dir} wrote no {missing}")
        manifest = {
            "fingerprint": print_,
            "source": str(model_dir),
            "recipe": RECIPE,
            "tools": {tool: _version(tool) for tool in _TOOLS},
            "inputs": inputs,
            "sha256": {name: sha256_of(temporary / name) for name in FILES.values()},
            "built_seconds": round(time.monotonic() - started, 1),
        }
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        for path in temporary.iterdir():
            path.chmod(0o644)  # mkdtemp's folder is private; the app user of an image must read it
        temporary.chmod(0o755)
        if folder.exists():  # a damaged or forced-over build: move it aside, then replace it
            stale = Path(tempfile.mkdtemp(prefix=".stale-", dir=cache_dir))
            folder.rename(stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        temporary.rename(folder)  # atomic on one file system: readers see all of it or nothing
    except subprocess.TimeoutExpired as exc:
        raise EmbeddingModelError(f"exporting the embedding model took longer than {_BUILD_TIMEOUT} s") from exc
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    log.info("exported the embedding model to %s in %.1f s", folder, manifest["built_seconds"])
    return manifest


# --- the child process: torch lives only here ------------------------------------------------


def _export(transformer_dir: Path, out_dir: Path) -> list[str]:
    """Write ``model-fp32.onnx`` and ``model-int8.onnx``; return the graph's input names."""
    import inspect
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = AutoModel.from_pretrained(str(transformer_dir), local_files_only=True).eval()
    accepted = inspect.signature(model.forward).parameters
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in inputs)
    axes = {name: {0: "batch", 1: "tokens"} for name in [*inputs, "token_embeddings"]}
    fp32 = out_dir / FILES["fp32"]
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter (dynamo=False) needs nothing beyond torch; the dynamo one
        # needs onnxscript. Its deprecation warning is not for the people running kb.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(model),
            example,
            str(fp32),
            input_names=inputs,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's "consider pre-processing" advice
    quantize_dynamic(str(fp32), str(out_dir / FILES["int8"]), per_channel=True, weight_type=QuantType.QInt8)
    return inputs


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m documents.embedding_backends.artifact TRANSFORMER_DIR OUT_DIR", file=sys.stderr)
        return 2
    inputs = _export(Path(argv[0]), Path(argv[1]))
    print(json.dumps({"inputs": inputs}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
