"""``GET /api/v1/search?q=...&k=...``: the caller's visible chunks that best match ``q``;
``&collection=<uuid>`` or ``&document=<uuid>`` searches only that collection or document (one
the caller may not read is a 404)."""

from django.conf import settings
from django.http import JsonResponse

from accounts.api import ApiError, api_view
from documents import retrieval
from documents.models import Scope, ScopeUnavailable
from kb_site import metrics


def resolve_scope(user, value) -> Scope:
    """The scope an API request names (``Scope.resolve``): 400 when malformed, 404 when
    ``user`` may not read it. The conversations API takes scopes through it too."""
    try:
        return Scope.resolve(user, value)
    except ValueError as exc:
        raise ApiError(str(exc), 400) from None
    except ScopeUnavailable as exc:
        raise ApiError(str(exc), 404) from None


@api_view(["GET"])
def search(request):
    query = request.GET.get("q", "").strip()
    if not query:
        raise ApiError("Query parameter 'q' is required.", 400)
    if len(query) > retrieval.MAX_QUERY_CHARS:
        raise ApiError(f"Query is too long (at most {retrieval.MAX_QUERY_CHARS} characters).", 400)
    raw_k = request.GET.get("k", str(settings.RETRIEVAL_K))
    try:
        k = int(raw_k)
    except ValueError:
        raise ApiError("Parameter 'k' must be an integer.", 400) from None
    if not 1 <= k <= retrieval.MAX_K:
        raise ApiError(f"Parameter 'k' must be between 1 and {retrieval.MAX_K}.", 400)
    wanted = {key: request.GET[key] for key in ("collection", "document") if request.GET.get(key)}
    if len(wanted) > 1:
        raise ApiError("Give 'collection' or 'document', not both.", 400)
    scope = resolve_scope(request.user, wanted)
    with metrics.RETRIEVAL.time():
        hits = retrieval.search(request.user, query, k, scope=scope)
    return JsonResponse({"query": query, "k": k, "scope": scope.as_json(), "results": [hit.as_dict() for hit in hits]})
