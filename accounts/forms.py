"""Forms for self sign-up and personal API tokens."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm


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
