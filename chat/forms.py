from django import forms

from chat.models import TITLE_MAX_LENGTH
from chat.services import FEEDBACK_COMMENT_MAX_CHARS, QUESTION_MAX_CHARS


class RenameForm(forms.Form):
    title = forms.CharField(max_length=TITLE_MAX_LENGTH, strip=True)


class NewConversationForm(forms.Form):
    # Optional first question, asked as soon as the conversation page opens.
    question = forms.CharField(required=False, strip=True, max_length=QUESTION_MAX_CHARS)


class FeedbackForm(forms.Form):
    value = forms.ChoiceField(choices=[("up", "Thumbs up"), ("down", "Thumbs down"), ("none", "No rating")])
    comment = forms.CharField(required=False, strip=True, max_length=FEEDBACK_COMMENT_MAX_CHARS)
