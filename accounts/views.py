"""Account pages: sign-in, self sign-up (when enabled) and personal API tokens.

Sign out and password change are Django's own views (see ``accounts/urls.py``).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import SignInForm, SignupForm, TokenForm
from accounts.models import ApiToken
from accounts.services import create_api_token, revoke_api_token


class SignInView(LoginView):
    """Django's sign-in view with the throttling-aware form (accounts/throttling.py).

    A sign-in refused because of too many failures shows the form again with the reason, as a
    429 so that scripts and monitoring can tell it from a wrong password.
    """

    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error("__all__", code="locked_out"):
            response.status_code = 429
        return response


@require_http_methods(["GET", "POST"])
@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List the user's tokens and create new ones. A new raw token is shown once, in this response."""
    raw_token = None
    form = TokenForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        raw_token = create_api_token(request.user, name=form.cleaned_data["name"])
        form = TokenForm()
    context = {
        "form": form,
        "raw_token": raw_token,
        "tokens": ApiToken.objects.for_user(request.user),
    }
    response = render(request, "accounts/tokens.html", context)
    if raw_token:
        # The page holds a secret: keep it out of caches and the back-forward history.
        response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def revoke_token(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.for_user(request.user), public_id=public_id)
    revoke_api_token(token)
    messages.success(request, f"Revoked the token “{token.name or token.public_id}”.")
    return redirect("accounts:tokens")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Self sign-up; a 404 unless ``SIGNUP_ENABLED`` (accounts are normally made by admins)."""
    if not settings.SIGNUP_ENABLED:
        raise Http404("Sign-up is disabled.")
    if request.user.is_authenticated:
        return redirect(resolve_url(settings.LOGIN_REDIRECT_URL))
    form = SignupForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.get_username()}! Your account is ready.")
        return redirect(resolve_url(settings.LOGIN_REDIRECT_URL))
    return render(request, "accounts/signup.html", {"form": form})
