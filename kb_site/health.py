"""Liveness (/healthz) and readiness (/readyz) probes.

They are answered by a middleware at the top of the stack so that they work for any Host
header (Kubernetes probes use the pod IP) and never redirect to HTTPS.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)


def readiness() -> tuple[bool, dict[str, str]]:
    """Return (ready, checks): the database answers and has the pgvector extension."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        checks["database"] = "ok"
        checks["pgvector"] = row[0] if row else "missing"
    except Exception as exc:  # any database failure means "not ready", never a 500
        log.warning("readiness check failed: %s", exc)
        checks["database"] = f"error: {exc.__class__.__name__}"
        checks["pgvector"] = "unknown"
    ready = checks["database"] == "ok" and checks["pgvector"] != "missing"
    return ready, checks


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return HttpResponse("ok\n", content_type="text/plain")
        if request.path == "/readyz":
            ready, checks = readiness()
            return JsonResponse({"ready": ready, **checks}, status=200 if ready else 503)
        return self.get_response(request)
