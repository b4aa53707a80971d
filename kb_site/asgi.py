"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb_site.settings")
# Django must be set up before consumers (and so models) are imported.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.middleware import websocket_stack  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from kb_site.limits import BodyLimitMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # A 413 for a body over its limit (kb_site/limits.py). kb_site/serve.py refuses it
        # earlier, as it arrives; this keeps the rule under any other ASGI server.
        "http": BodyLimitMiddleware(django_asgi_app),
        # Origin check (waived only for Bearer-token scripts), session auth, token auth.
        "websocket": websocket_stack(URLRouter(websocket_urlpatterns)),
    }
)
