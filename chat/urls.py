from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("new/", views.new_conversation, name="new"),
    path("c/<uuid:public_id>/", views.conversation_page, name="conversation"),
    path("c/<uuid:public_id>/rename/", views.rename, name="rename"),
    path("c/<uuid:public_id>/delete/", views.delete, name="delete"),
    path("c/<uuid:public_id>/settings/", views.update_settings, name="settings"),
    path("c/<uuid:public_id>/scope/", views.change_scope, name="scope"),
    path("c/<uuid:public_id>/export.md", views.export, {"fmt": "md"}, name="export_md"),
    path("c/<uuid:public_id>/export.json", views.export, {"fmt": "json"}, name="export_json"),
    path("m/<uuid:public_id>/feedback/", views.feedback, name="feedback"),
]
