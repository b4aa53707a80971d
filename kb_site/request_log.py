"""One log line per HTTP request, on the ``kb.request`` logger.

Each line says the method, the path, the status, the time taken in milliseconds and the
signed-in user's id; with ``LOG_FORMAT=json`` these are the line's fields (``kb_site.settings``
``LOGGING``). The query string is left out unless ``LOG_CONTENT`` is on: a search's ``?q=`` is a
user's question. Health probes are answered before this middleware and never logged.
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

log = logging.getLogger("kb.request")


class RequestLogMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _log(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        _log(request, response, started)
        return response


def _log(request, response, started: float) -> None:
    user = getattr(request, "user", None)
    path = request.get_full_path() if settings.LOG_CONTENT else request.path
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info(
        "%s %s %s %.1f ms",
        request.method,
        path,
        response.status_code,
        duration_ms,
        extra={
            "event": "request",
            "method": request.method,
            "path": path,
            "status": response.status_code,
            "duration_ms": duration_ms,
            "user_id": user.pk if user is not None and user.is_authenticated else None,
        },
    )
