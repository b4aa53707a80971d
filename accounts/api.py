"""Authentication for the JSON API: ``Authorization: Bearer <token>`` or the browser session.

``api_view`` wraps a view so that it
- answers 401 JSON when the caller is not authenticated (or the token is wrong),
- enforces CSRF only for session-authenticated unsafe requests (a token is not ambient
  authority, so token calls need no CSRF token),
- answers 405 JSON for methods the view does not list,
- turns ``ApiError`` into a JSON error with its status.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from accounts.services import bearer_token, user_for_token

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400, **extra):
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra


def error_response(message: str, status: int, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _csrf_failure(request: HttpRequest) -> JsonResponse | None:
    check = CsrfViewMiddleware(lambda req: None)
    check.process_request(request)
    response = check.process_view(request, None, (), {})
    if response is not None:
        return error_response("CSRF check failed: send the X-CSRFToken header or use a Bearer token.", 403)
    return None


def api_view(methods: list[str]) -> Callable:
    allowed = {m.upper() for m in methods}

    def decorator(view: Callable) -> Callable:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method not in allowed:
                response = error_response(f"Method {request.method} not allowed.", 405)
                response["Allow"] = ", ".join(sorted(allowed))
                return response
            header = request.headers.get("Authorization")
            if header is not None:
                user = user_for_token(bearer_token(header) or "")
                if user is None:
                    response = error_response("Invalid or expired API token.", 401)
                    response["WWW-Authenticate"] = 'Bearer realm="kb"'
                    return response
                request.user = user
            elif request.user.is_authenticated:
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    failure = _csrf_failure(request)
                    if failure is not None:
                        return failure
            else:
                response = error_response("Authentication required: send Authorization: Bearer <token>.", 401)
                response["WWW-Authenticate"] = 'Bearer realm="kb"'
                return response
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return error_response(exc.message, exc.status, **exc.extra)

        return wrapper

    return decorator
