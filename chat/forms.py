from django import forms

from chat.models import TITLE_MAX_LENGTH
from chat.services import FEEDBACK_COMMENT_MAX_CHARS, QUESTION_MAX_CHARS


class RenameForm(forms.Form):
    title = forms.CharField(max_length=TITLE_MAX_LENGTH, strip=True)


class NewConversationForm(forms.Form):
    # Optional first question, asked as soon as the conversation page opens.
    question = forms.CharField(required=False, strip=True, max_length=QUESTION_MAX_CHARS)
    # Optional scope ("Ask this collection", "Ask about this document"): at most one of them.
    collection = forms.UUIDField(required=False)
    document = forms.UUIDField(required=False)

    def scope_value(self) -> dict:
        """The chosen scope as ``Scope.resolve`` takes it."""
        return {key: str(self.cleaned_data[key]) for key in ("collection", "document") if self.cleaned_data.get(key)}


class ScopeForm(forms.Form):
    """The conversation header's scope picker: ``all``, ``collection:<id>`` or ``document:<id>``."""

    scope = forms.CharField(max_length=100)

    def scope_value(self) -> dict:
        kind, _, target = self.cleaned_data["scope"].partition(":")
        if kind == "all" and not target:
            return {}
        return {kind: target}


class FeedbackForm(forms.Form):
    value = forms.ChoiceField(choices=[("up", "Thumbs up"), ("down", "Thumbs down"), ("none", "No rating")])
    comment = forms.CharField(required=False, strip=True, max_length=FEEDBACK_COMMENT_MAX_CHARS)
