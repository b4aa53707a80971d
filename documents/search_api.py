"""``GET /api/v1/search?q=...&k=...``: the caller's visible chunks that best match ``q``."""

from django.conf import settings
from django.http import JsonResponse

from accounts.api import ApiError, api_view
from documents import retrieval


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
    hits = retrieval.search(request.user, query, k)
    return JsonResponse({"query": query, "k": k, "results": [hit.as_dict() for hit in hits]})
