from django.urls import path

from chat import api

app_name = "chat_api"

urlpatterns = [
    path("conversations/", api.conversations, name="conversations"),
    path("conversations/<uuid:public_id>/", api.conversation, name="conversation"),
]
