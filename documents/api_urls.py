from django.urls import path

from documents import api

app_name = "api"

urlpatterns = [
    path("documents/", api.documents, name="documents"),
    path("documents/<uuid:public_id>/", api.document, name="document"),
]
