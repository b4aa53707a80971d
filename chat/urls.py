from django.urls import path
from django.views.generic import RedirectView

app_name = "chat"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="documents:list", permanent=False), name="home"),
]
