from django.urls import path

from documents import collection_views, views

app_name = "documents"

urlpatterns = [
    path("", views.document_list, name="list"),
    path("upload/", views.upload, name="upload"),
    path("activity/", views.activity, name="activity"),
    path("<uuid:public_id>/", views.detail, name="detail"),
    path("<uuid:public_id>/status/", views.status, name="status"),
    path("<uuid:public_id>/delete/", views.delete, name="delete"),
    path("<uuid:public_id>/reindex/", views.reindex, name="reindex"),
    path("<uuid:public_id>/collections/", collection_views.add_to_collection, name="add_to_collection"),
    path("collections/", collection_views.collection_list, name="collections"),
    path("collections/new/", collection_views.collection_new, name="collection_new"),
    path("collections/<uuid:public_id>/", collection_views.collection_detail, name="collection"),
    path("collections/<uuid:public_id>/edit/", collection_views.collection_edit, name="collection_edit"),
    path("collections/<uuid:public_id>/delete/", collection_views.collection_delete, name="collection_delete"),
    path("collections/<uuid:public_id>/add/", collection_views.collection_add, name="collection_add"),
    path(
        "collections/<uuid:public_id>/remove/<uuid:document_id>/",
        collection_views.collection_remove,
        name="collection_remove",
    ),
]
