"""Queue documents for re-ingestion (extract, chunk and embed again).

``reindex ID [ID ...]`` (database ids or public UUIDs), ``reindex --all``, or
``reindex --model-changed``: the ready documents whose chunks were embedded with another model
than the one configured now (``EMBEDDING_MODEL``), which search would otherwise compare with
query vectors from a different model.
"""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from documents import embeddings, services
from documents.models import Document, Status


class Command(BaseCommand):
    help = "Re-extract, re-chunk and re-embed documents in the background."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", help="document ids or public UUIDs")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="every document")
        which.add_argument(
            "--model-changed",
            action="store_true",
            help="ready documents embedded with another model than the configured one",
        )

    def handle(self, *args, **options):
        ids, every, model_changed = options["ids"], options["all"], options["model_changed"]
        if sum([bool(ids), every, model_changed]) != 1:
            raise CommandError("give document ids, or --all, or --model-changed")
        if every:
            documents = Document.objects.all()
        elif model_changed:
            current = embeddings.model_name()
            documents = Document.objects.filter(status=Status.READY).exclude(embedding_model=current)
            self.stdout.write(f"configured embedding model: {current}")
        else:
            documents = Document.objects.filter(_ids_filter(ids))
            missing = len(set(ids)) - documents.count()
            if missing:
                raise CommandError(f"{missing} of the given documents do not exist; nothing was queued")
        queued = 0
        for document in list(documents.order_by("pk")):
            services.reindex_document(document)
            queued += 1
        total = Document.objects.count()
        self.stdout.write(f"queued {queued} of {total} document{'s' if total != 1 else ''} for re-indexing")


def _ids_filter(values: list[str]) -> Q:
    pks, public_ids = [], []
    for value in values:
        if value.isdigit():
            pks.append(int(value))
            continue
        try:
            public_ids.append(uuid.UUID(value))
        except ValueError:
            raise CommandError(f"not a document id or UUID: {value!r}") from None
    return Q(pk__in=pks) | Q(public_id__in=public_ids)
