from django.contrib import admin
from django.urls import include, path

from documents import search_api

admin.site.site_header = "kb administration"
admin.site.site_title = "kb admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("documents/", include("documents.urls")),
    path("api/v1/search", search_api.search, name="api-search"),
    path("api/v1/", include("documents.api_urls")),
    path("api/v1/", include("chat.api_urls")),
    path("", include("chat.urls")),
]
