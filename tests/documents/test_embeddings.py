"""The embedding backends (EMBEDDING_BACKEND) on the real packaged MiniLM and its real export.

The export is built once, into the configured EMBEDDING_CACHE_DIR (``var/embeddings`` when
unset), and reused by later sessions; the tests that damage or rebuild one work on a copy.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from documents import embedding_backends, embeddings
from documents.embedding_backends import artifact
from documents.embedding_backends.base import ModelLayout
from tests.factories import make_ready_document

BASE_DIR = Path(__file__).resolve().parents[2]
LONG = " ".join(f"Sentence {i} says that the enzyme pathway regulates protein folding in yeast." for i in range(60))
SAMPLES = [
    "",
    "hello world",
    "Does vitamin D lower the risk of hip fractures in the elderly?",
    "Café naïve résumé — déjà vu; Straße; ½ cup; 東京の天気は晴れ; emoji 🙂👍; tabs\tand\nnewlines",
    "ALL CAPS AND CamelCase words, hyphen-ated, URLs like https://example.org/a?b=c and e-mail a@b.co",
    "Numbers 3.14159, 1,000,000, IL-6, TNF-α, CD4+ T cells, p < 0.05 and [citation needed].",
    LONG,  # longer than the 256-token window: every backend truncates it the same way
    "   leading and trailing spaces   ",
]


@pytest.fixture(scope="session")
def backends() -> dict[str, embedding_backends.Backend]:
    """Every backend on the packaged model, loaded once (the export built first if missing)."""
    model_dir = embeddings.model_path()
    return {
        name: embedding_backends.load(name, model_dir, Path(django_settings.EMBEDDING_CACHE_DIR))
        for name in embedding_backends.BACKENDS
    }


@pytest.fixture(scope="session")
def export(backends) -> Path:
    return artifact.artifact_dir(embeddings.model_path(), Path(django_settings.EMBEDDING_CACHE_DIR))


@pytest.mark.parametrize("name", embedding_backends.BACKENDS)
def test_every_backend_returns_normalised_vectors_of_the_column_size_in_order(backends, name):
    backend = backends[name]
    assert (backend.name, backend.max_seq_length, backend.dimensions) == (name, 256, 384)
    vectors = backend.embed(SAMPLES, batch_size=3)  # batches of mixed lengths, sorted inside
    assert vectors.shape == (len(SAMPLES), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # Order kept: each row is nearest to that text's own vector embedded alone.
    one_by_one = np.stack([backend.embed([text], batch_size=1)[0] for text in SAMPLES])
    similarity = vectors @ one_by_one.T
    assert list(similarity.argmax(axis=1)) == list(range(len(SAMPLES)))
    # int8 activations are scaled per batch, so batch-mates move an onnx vector (most for a text
    # of a token or two beside long ones: docs/architecture.md); the others are batch-independent.
    assert similarity.diagonal().min() > (0.96 if name == "onnx" else 0.9999)
    assert backend.embed([], batch_size=8).shape == (0, 384)


def test_openvino_runs_batches_on_every_stream_and_raises_a_batchs_failure_afterwards(backends):
    backend = backends["openvino"]
    assert backend.streams >= 1
    stored: list[list[int]] = []

    def failing_store(rows, attention_mask, hidden):
        stored.append(rows)
        if len(stored) == 2:
            raise ValueError("this batch failed")

    with pytest.raises(ValueError, match="this batch failed"):
        backend._infer_all(backend._batches(SAMPLES, 2), failing_store)
    assert sorted(row for rows in stored for row in rows) == list(range(len(SAMPLES)))  # every batch ran
    # The queue is ready for the next caller.
    assert backend.embed(SAMPLES[:3], batch_size=8).shape == (3, 384)


@pytest.mark.parametrize(("name", "sentences", "degenerate"), [("onnx", 0.99, 0.97), ("openvino", 0.9995, 0.9995)])
def test_exported_backends_agree_with_torch(backends, name, sentences, degenerate):
    reference = backends["torch"].embed(SAMPLES, batch_size=4)
    vectors = backends[name].embed(SAMPLES, batch_size=4)
    cosine = dict(zip(SAMPLES, (reference * vectors).sum(axis=1).round(5).tolist(), strict=True))
    # int8 loses most on a text of one or two tokens, where one rounding weighs most.
    assert min(cosine.pop(""), cosine.pop("hello world")) >= degenerate
    assert min(cosine.values()) >= sentences, cosine
    # Different texts stay different: a backend that returned one vector for all would fail.
    assert (vectors[2] @ vectors[5]) < 0.9


@pytest.mark.parametrize("name", ["onnx", "openvino"])
def test_exported_backends_count_tokens_exactly_like_torch(backends, name):
    torch_counts = [backends["torch"].count_tokens(text) for text in SAMPLES]
    assert [backends[name].count_tokens(text) for text in SAMPLES] == torch_counts
    assert torch_counts[1] == 4  # [CLS] hello world [SEP]
    assert torch_counts[SAMPLES.index(LONG)] > 600  # counted, never truncated


@pytest.mark.parametrize("name", ["torch", "onnx", "openvino"])
def test_every_backend_counts_a_list_in_one_call_and_knows_minilm_counts_add_up(backends, name):
    backend = backends[name]
    assert backend.count_tokens_many(SAMPLES) == [backend.count_tokens(text) for text in SAMPLES]
    assert backend.count_tokens_many([]) == []
    assert backend.tokens_add_up  # WordPiece after BERT's pre-tokeniser
    joined = " ".join(SAMPLES)
    assert backend.count_tokens(joined) == sum(backend.count_tokens_many(SAMPLES)) - (len(SAMPLES) - 1) * 2


def test_the_export_matches_its_manifest_and_is_reused(export):
    manifest = json.loads((export / artifact.MANIFEST).read_text())
    assert manifest["fingerprint"] == artifact.fingerprint(embeddings.model_path())
    assert set(manifest["sha256"]) == {"model-fp32.onnx", "model-int8.onnx"}
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    out = io.StringIO()
    call_command("build_embedding_model", stdout=out)
    assert f"up to date: {export}" in out.getvalue()


@pytest.mark.parametrize(
    ("backend", "suffix"), [("torch", "@torch-fp32"), ("onnx", "@onnx-int8"), ("openvino", "@openvino-bf16")]
)
def test_the_stored_model_name_says_backend_and_precision(settings, backend, suffix):
    settings.EMBEDDING_BACKEND = backend
    assert embeddings.model_name() == "sentence-transformers/all-MiniLM-L6-v2" + suffix


def test_reindex_model_changed_catches_a_switch_of_backend(settings, alice, django_capture_on_commit_callbacks):
    settings.EMBEDDING_BACKEND = "torch"
    make_ready_document(alice, "notes", [("", "Alpha text about enzymes.")])
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=False):
        call_command("reindex", "--model-changed", stdout=out)
    assert "queued 0 of 1 document" in out.getvalue()

    settings.EMBEDDING_BACKEND = "onnx"
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        call_command("reindex", "--model-changed", stdout=out)
    assert "all-MiniLM-L6-v2@onnx-int8" in out.getvalue()
    assert "queued 1 of 1 document" in out.getvalue()
    assert len(queued) == 1


def test_a_cache_folder_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(embeddings.EmbeddingModelError, match="EMBEDDING_CACHE_DIR=.*cannot be created"):
        embedding_backends.load("onnx", embeddings.model_path(), blocker / "cache")


def test_a_model_with_layers_the_exported_backends_cannot_run_is_refused_with_a_clear_error(tmp_path):
    source = embeddings.model_path()
    shutil.copytree(source, tmp_path / "model", ignore=shutil.ignore_patterns("*.safetensors"))
    modules = json.loads((tmp_path / "model" / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (tmp_path / "model" / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(embeddings.EmbeddingModelError, match="set EMBEDDING_BACKEND=torch"):
        ModelLayout.read(tmp_path / "model")


@pytest.mark.slow
def test_a_missing_or_damaged_export_is_built_again_once_even_when_two_callers_race(export, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    model_dir = embeddings.model_path()
    # An intact copy is used as it is.
    shutil.copytree(export, cache / export.name)
    folder, _, built = artifact.ensure_built(model_dir, cache)
    assert (folder, built) == (cache / export.name, False)

    # Damaged (a truncated graph): built again, and the result loads and embeds.
    damaged = folder / "model-int8.onnx"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    _, manifest, built = artifact.ensure_built(model_dir, cache)
    assert built and artifact.check(folder, manifest["fingerprint"]) is not None
    backend = embedding_backends.load("onnx", model_dir, cache)
    assert backend.embed(["a passage"], batch_size=1).shape == (1, 384)

    # Missing, with two callers at once: one builds, the other waits and uses its result.
    shutil.rmtree(folder)
    results = []
    callers = [
        threading.Thread(target=lambda: results.append(artifact.ensure_built(model_dir, cache))) for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert sorted(built for _, _, built in results) == [False, True]
    assert artifact.check(folder, manifest["fingerprint"]) is not None
    assert [path.name for path in cache.iterdir() if path.is_dir()] == [folder.name]  # no temporary left


@pytest.mark.slow
def test_a_failed_export_is_a_clear_error_and_leaves_nothing_behind(tmp_path):
    source = embeddings.model_path()
    broken = tmp_path / "broken-model"
    shutil.copytree(source, broken, ignore=shutil.ignore_patterns("*.safetensors"))
    (broken / "model.safetensors").write_bytes(b"these are not weights")
    cache = tmp_path / "cache"
    with pytest.raises(embeddings.EmbeddingModelError, match="exporting the embedding model from .* failed"):
        embedding_backends.load("onnx", broken, cache)
    assert [path.name for path in cache.iterdir() if path.is_dir()] == []


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "kb_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_bad_backend_setting_is_refused_at_start_up_naming_the_variable():
    completed = _python("import django; django.setup()", EMBEDDING_BACKEND="tensorflow")
    assert completed.returncode != 0
    assert "ImproperlyConfigured: EMBEDDING_BACKEND must be 'torch', 'onnx' or 'openvino', got 'tensorflow'" in (
        completed.stderr
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_a_web_process_with_an_exported_backend_never_imports_torch(export, backend):
    completed = _python(
        "import json, sys, django\n"
        "django.setup()\n"
        "from kb_site.asgi import application\n"
        "from documents import embeddings\n"
        "vector = embeddings.embed_query('Does vitamin D lower the risk of fractures?')\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'sentence_transformers': "
        "'sentence_transformers' in sys.modules, 'shape': list(vector.shape), 'name': embeddings.model_name()}))",
        EMBEDDING_BACKEND=backend,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    assert seen == {
        "torch": False,
        "sentence_transformers": False,
        "shape": [384],
        "name": f"sentence-transformers/all-MiniLM-L6-v2@{backend}-{embedding_backends.PRECISIONS[backend]}",
    }


@pytest.mark.slow
def test_the_image_build_step_finds_the_export_up_to_date_without_a_database(export):
    """The Dockerfile builds the export with collectstatic's settings and no database; the same
    command with those settings finds this session's export intact and changes nothing."""
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    step = dockerfile[: dockerfile.index("python manage.py build_embedding_model")].rsplit("&&", 1)[1]
    assignments = dict(word.split("=", 1) for word in step.replace("\\", " ").split())
    assert set(assignments) == {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"}
    completed = subprocess.run(
        [sys.executable, "manage.py", "build_embedding_model"],
        cwd=BASE_DIR,
        env={**os.environ, **assignments},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert f"up to date: {export}" in completed.stdout


def test_sentences_embedded_lately_are_reused_and_the_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(embeddings, "_sentences", type(embeddings._sentences)())
    monkeypatch.setattr(embeddings, "SENTENCE_CACHE_SIZE", 3)
    calls: list[list[str]] = []
    embed_texts = embeddings.embed_texts

    def counted(texts, *args, **kwargs):
        calls.append(list(texts))
        return embed_texts(texts, *args, **kwargs)

    monkeypatch.setattr(embeddings, "embed_texts", counted)
    texts = ["The ferry leaves at 7:15.", "The bakery opens at six.", "The ferry leaves at 7:15."]

    first = embeddings.embed_sentences(texts)
    again = embeddings.embed_sentences(["The bakery opens at six.", "Tickets cost four euros."])

    assert calls == [texts[:2], ["Tickets cost four euros."]]  # each new text embedded once
    assert first.shape == (3, django_settings.EMBEDDING_DIMENSIONS) and np.array_equal(first[0], first[2])
    assert np.allclose(first[:2], embed_texts(texts[:2]), atol=1e-2)
    assert np.array_equal(again[0], first[1])
    embeddings.embed_sentences(["A fourth sentence here.", "A fifth sentence here."])
    assert len(embeddings._sentences) == 3  # the least recently used went first
    assert (embeddings.model_name(), "The ferry leaves at 7:15.") not in embeddings._sentences
    assert embeddings.embed_sentences([]).shape == (0, django_settings.EMBEDDING_DIMENSIONS)
