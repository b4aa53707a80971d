from django.apps import AppConfig
from django.db.models.signals import pre_delete


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from documents.models import Document

        # A signal, not a call in documents.services: documents must not depend on chat, and
        # every way a document is deleted (site, API, admin, its owner deleted) must erase
        # the passages answers copied from it.
        pre_delete.connect(_forget_cited_passages, sender=Document, dispatch_uid="chat_forget_cited_passages")


def _forget_cited_passages(sender, instance, **kwargs) -> None:
    from chat import services

    services.forget_cited_passages(instance)
