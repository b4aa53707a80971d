"""Forms for signing in, self sign-up and personal API tokens."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.exceptions import ValidationError

from accounts.throttling import lockout_message


class LockoutMessageMixin:
    """Say so when a sign-in was refused because of too many failures (accounts/throttling.py).

    django-axes refuses such a sign-in inside ``authenticate()`` and marks the request; without
    this the form would only say that the password was wrong.
    """

    def get_invalid_login_error(self) -> ValidationError:
        if getattr(self.request, "axes_locked_out", False):
            return ValidationError(lockout_message(), code="locked_out")
        return super().get_invalid_login_error()


class SignInForm(LockoutMessageMixin, AuthenticationForm):
    """The site's sign-in form."""


class AdminSignInForm(LockoutMessageMixin, AdminAuthenticationForm):
    """The admin's sign-in form (set on ``admin.site`` in accounts/admin.py)."""


class SignupForm(UserCreationForm):
    """Create an ordinary account (no staff rights, no groups) when sign-up is enabled."""

    email = forms.EmailField(required=False, help_text="Optional.")

    class Meta(UserCreationForm.Meta):
        fields = ["username", "email"]


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="A label to recognise the token by, e.g. the script or machine that uses it.",
    )
