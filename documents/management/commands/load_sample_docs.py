"""Load the sample knowledge base on first run: every ``docs/*.md`` file of the project,
uploaded as the first admin's documents and shared with every signed-in user.

Runs only while the site has no document at all, so it is safe to call on every start
(``make run`` does) and never brings back a sample that someone deleted.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from documents import services
from documents.models import Document, Visibility

_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


class Command(BaseCommand):
    help = "Upload the project's docs/*.md as shared documents, if the site has no documents yet."

    def add_arguments(self, parser):
        parser.add_argument("--path", default=str(Path(settings.BASE_DIR) / "docs"), help="folder of .md files")

    def handle(self, *args, path, **options):
        if Document.objects.exists():
            self.stdout.write("The site has documents already; sample documents are not loaded.")
            return
        owner = get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if owner is None:
            self.stdout.write("No admin account yet; sample documents are not loaded.")
            return
        folder = Path(path)
        files = sorted(folder.glob("*.md")) if folder.is_dir() else []
        if not files:
            self.stdout.write(f"No sample documents to load: {folder} has no .md files.")
            return
        queued = 0
        for file in files:
            data = file.read_bytes()
            try:
                document, created = services.upload_document(
                    owner,
                    file_name=file.name,
                    data=data,
                    title=_title(data) or "",
                    visibility=Visibility.SHARED,
                )
            except services.UploadError as exc:
                self.stderr.write(f"  skipped {file.name}: {exc.message}")
                continue
            if created:
                queued += 1
                self.stdout.write(f"  queued {file.name} as “{document.title}”")
        self.stdout.write(f"Queued {queued} sample document{'s' if queued != 1 else ''} for ingestion.")


def _title(data: bytes) -> str | None:
    """The first level-1 heading of a Markdown file, if any."""
    match = _HEADING.search(data[:20000].decode("utf-8", "replace"))
    return match.group(1).strip() if match else None
