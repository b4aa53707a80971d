"""Build the exported embedding model the onnx and openvino backends run (see
``documents/embedding_backends/artifact.py``), under ``EMBEDDING_CACHE_DIR``.

Idempotent and quick when nothing changed: an intact export of the same weights, recipe and
tools is kept as it is. ``--force`` builds it again anyway. Run it where the cache folder is
writable — the image build does (Dockerfile); otherwise web and worker processes build it on
first use. Needs no database.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from documents import embeddings
from documents.embedding_backends import artifact


class Command(BaseCommand):
    help = "Export and quantise the embedding model for the onnx/openvino backends (skipped when up to date)."
    requires_system_checks: list[str] = []  # no database at image build time

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="build again even when an intact export exists")

    def handle(self, *args, **options):
        started = time.monotonic()
        try:
            folder, manifest, built = artifact.ensure_built(
                embeddings.model_path(), Path(settings.EMBEDDING_CACHE_DIR), force=options["force"]
            )
        except embeddings.EmbeddingModelError as exc:
            raise CommandError(str(exc)) from exc
        state = f"built in {time.monotonic() - started:.1f} s" if built else "up to date"
        self.stdout.write(f"embedding model export {state}: {folder}")
        self.stdout.write(f"configured: {embeddings.model_name()} (EMBEDDING_BACKEND={settings.EMBEDDING_BACKEND})")
