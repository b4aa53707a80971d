from django.urls import path

from documents import api, collection_api

app_name = "api"

urlpatterns = [
    path("documents/", api.documents, name="documents"),
    path("documents/<uuid:public_id>/", api.document, name="document"),
    path("collections/", collection_api.collections, name="collections"),
    path("collections/<uuid:public_id>/", collection_api.collection, name="collection"),
    path("collections/<uuid:public_id>/documents/", collection_api.collection_documents, name="collection_documents"),
    path(
        "collections/<uuid:public_id>/documents/<uuid:document_id>/",
        collection_api.collection_document,
        name="collection_document",
    ),
]
