"""Forms for uploading documents from the site and from Django admin.

Size checks live here (they need no file contents); type checks need the bytes and live in
``documents.services.upload_document``, whose ``UploadError`` the views turn into a form error.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from documents.models import Document, Visibility


def groups_for(user):
    """The groups ``user`` may share a document with: their own, or every group for staff."""
    if user.is_staff:
        return Group.objects.order_by("name")
    return user.groups.order_by("name")


def file_size_error(size: int) -> str | None:
    """A friendly message when an upload of ``size`` bytes is empty or over the limit, else None."""
    if size <= 0:
        return "The file is empty. Choose a file with some content."
    limit = settings.UPLOAD_MAX_BYTES
    if size > limit:
        return f"The file is {filesizeformat(size)}; the largest file you can upload is {filesizeformat(limit)}."
    return None


class UploadFieldsMixin:
    """Shared validation of the file and of visibility + groups."""

    def clean_file(self) -> UploadedFile:
        upload = self.cleaned_data["file"]
        error = file_size_error(upload.size or 0)
        if error:
            raise forms.ValidationError(error, code="empty" if not upload.size else "too_large")
        return upload

    def clean(self):
        cleaned = super().clean()
        visibility = cleaned.get("visibility")
        groups = cleaned.get("groups")
        if visibility == Visibility.GROUPS:
            if groups is not None and not groups:
                self.add_error("groups", "Choose at least one group to share this document with.")
        else:
            # Groups only matter for group visibility; do not store a stale choice.
            cleaned["groups"] = Group.objects.none()
        return cleaned


class UploadForm(UploadFieldsMixin, forms.Form):
    """Upload one file from the site. ``groups`` offers only the user's own groups (staff: all)."""

    file = forms.FileField(
        label="File",
        help_text="PDF, Word (.docx), Markdown, HTML or plain text.",
        allow_empty_file=True,  # clean_file explains an empty file in our own words
    )
    title = forms.CharField(
        max_length=300, required=False, help_text="Optional. Defaults to the document's title or file name."
    )
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE, widget=forms.RadioSelect)
    groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["groups"].queryset = groups_for(user)
        self.fields["file"].widget.attrs["accept"] = ".pdf,.docx,.md,.markdown,.html,.htm,.txt,.text"


class AdminUploadForm(UploadFieldsMixin, forms.ModelForm):
    """The "add document" form in Django admin: upload a file for any owner.

    The document is created by ``documents.services.upload_document`` during validation (inside
    the admin's transaction), because only the service can tell whether the bytes are a
    supported file; its ``UploadError`` becomes an error on the file field. ``save()`` then
    returns the document the service made (or the existing one, for a duplicate).
    """

    file = forms.FileField(
        label="File", help_text="PDF, Word (.docx), Markdown, HTML or plain text.", allow_empty_file=True
    )
    title = forms.CharField(max_length=300, required=False, help_text="Optional. Defaults to the file's title.")
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE)
    groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"), required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Document
        fields = ["file", "title", "owner", "visibility", "groups"]

    created = False

    def _post_clean(self) -> None:
        # ModelForm would build a Document from the fields and validate it; here the service
        # builds the document from the bytes and validates them, so it takes this step over.
        if self.errors:
            return
        from documents.services import UploadError, upload_document

        upload = self.cleaned_data["file"]
        upload.seek(0)
        try:
            document, created = upload_document(
                self.cleaned_data["owner"],
                file_name=upload.name,
                data=upload.read(),
                title=self.cleaned_data["title"],
                visibility=self.cleaned_data["visibility"],
                groups=list(self.cleaned_data["groups"]),
            )
        except UploadError as exc:
            self.add_error("file", exc.message)
            return
        self.instance = document
        self.created = created

    def save(self, commit: bool = True) -> Document:
        # The service already saved the document and its groups.
        self.save_m2m = lambda: None
        return self.instance
