from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "documents"
    verbose_name = "Documents"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        # Every qcluster worker process watches for documents whose worker died (leases,
        # documents/tasks.py); web processes never get this signal.
        post_spawn.connect(_start_ingestion_watch, dispatch_uid="documents-ingestion-watch")


def _start_ingestion_watch(**kwargs) -> None:
    from documents import tasks

    tasks.start_watch()
