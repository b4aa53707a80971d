"""Forms for uploading documents from the site, the API and Django admin.

Every upload path validates through ``UploadFieldsMixin``: the file's bytes by
``documents.services.check_upload`` (size, emptiness, type by content) and the choice of
visibility and groups. Form errors carry the service's codes (``empty``, ``too_large``,
``unsupported``), which the API turns into HTTP statuses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from documents import filetypes, services
from documents.models import COLLECTION_NAME_MAX_LENGTH, DOCUMENT_TITLE_MAX_LENGTH, Collection, Document, Visibility

FILE_HELP = "PDF, Word (.docx), Markdown, HTML or plain text."
TITLE_ERRORS = {"max_length": f"The title is too long (at most {DOCUMENT_TITLE_MAX_LENGTH} characters)."}
VISIBILITY_ERRORS = {"invalid_choice": f"'visibility' must be one of: {', '.join(Visibility.values)}."}


def groups_for(user):
    """The groups ``user`` may share a document with: their own, or every group for staff."""
    if user.is_staff:
        return Group.objects.order_by("name")
    return user.groups.order_by("name")


def groups_named(user, items) -> list[Group]:
    """The groups ``items`` name (names or ids) among those ``user`` may share with; raises
    ``ValueError`` for any other, so a reply never reveals which groups exist."""
    allowed = list(groups_for(user))
    by_name = {group.name: group for group in allowed}
    by_id = {str(group.pk): group for group in allowed}
    chosen: list[Group] = []
    for item in items:
        group = by_name.get(str(item)) or by_id.get(str(item))
        if group is None:
            raise ValueError(f"You are not a member of a group called {item!r}.")
        if group not in chosen:
            chosen.append(group)
    return chosen


@dataclass(frozen=True)
class CheckedFile:
    """An uploaded file whose bytes passed ``services.check_upload``."""

    name: str
    data: bytes
    mime_type: str


class UploadFieldsMixin:
    """Shared validation of the file and of visibility + groups."""

    def clean_file(self) -> CheckedFile | list[CheckedFile]:
        """The file, or each of several (named in the message of the first bad one), checked."""
        uploads = self.cleaned_data["file"]
        several = isinstance(uploads, list) and len(uploads) > 1
        checked = []
        for upload in uploads if isinstance(uploads, list) else [uploads]:
            upload.seek(0)
            data = upload.read()
            try:
                name, mime_type = services.check_upload(upload.name, data)
            except services.UploadError as exc:
                message = f"{filetypes.safe_filename(upload.name)}: {exc.message}" if several else exc.message
                raise forms.ValidationError(message, code=exc.code) from None
            checked.append(CheckedFile(name=name, data=data, mime_type=mime_type))
        return checked if isinstance(uploads, list) else checked[0]

    def clean(self):
        cleaned = super().clean()
        files = cleaned.get("file")
        if isinstance(files, list) and len(files) > 1 and cleaned.get("title"):
            self.add_error("title", "A title names one document: leave it empty to upload several files.")
        visibility = cleaned.get("visibility")
        groups = cleaned.get("groups")
        if visibility == Visibility.GROUPS:
            if groups is not None and not groups:
                self.add_error("groups", services.GROUPS_REQUIRED)
        else:
            # Groups only matter for group visibility; do not store a stale choice.
            cleaned["groups"] = Group.objects.none()
        return cleaned

    def upload(self, owner) -> list[tuple[Document, bool]]:
        """Store the validated file or files for ``owner``, all or none (see
        ``services.upload_documents``): ``[(document, created)]``, and put them in the chosen
        collection, if any."""
        files = self.cleaned_data["file"]
        results = services.upload_documents(
            owner,
            [(file.name, file.data) for file in (files if isinstance(files, list) else [files])],
            title=self.cleaned_data["title"],
            visibility=self.cleaned_data["visibility"],
            groups=list(self.cleaned_data["groups"]),
        )
        collection = self.cleaned_data.get("collection")
        if collection is not None:
            for document, _ in results:
                services.add_to_collection(collection, document)
        return results


def too_many_files() -> str:
    """The error for an upload of more files than ``UPLOAD_MAX_FILES``."""
    return f"That is too many files at once: upload at most {settings.UPLOAD_MAX_FILES:,} at a time."


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """One or more files in the same field; cleans to a list, each file as ``FileField`` does."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None) -> list:
        files = [item for item in data if item] if isinstance(data, (list, tuple)) else [data]
        if len(files) > settings.UPLOAD_MAX_FILES:
            raise forms.ValidationError(too_many_files(), code="invalid")
        if not files or files == [None]:
            return [super().clean(None, initial)]  # "This field is required."
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class UploadForm(UploadFieldsMixin, forms.Form):
    """Upload one file or several from the site and the API, all with the same visibility,
    groups and collection. ``groups`` offers only the user's own groups (staff: all)."""

    file = MultipleFileField(
        label="Files",
        help_text=f"{FILE_HELP} Choose several to upload them together (at most {settings.UPLOAD_MAX_FILES} "
        "at once, together as large as one file may be).",
        allow_empty_file=True,  # clean_file explains an empty file in our own words
    )
    title = forms.CharField(
        max_length=DOCUMENT_TITLE_MAX_LENGTH,
        required=False,
        help_text="Optional, for a single file. Defaults to the document's title or file name.",
        error_messages=TITLE_ERRORS,
    )
    visibility = forms.ChoiceField(
        choices=Visibility.choices,
        initial=Visibility.PRIVATE,
        widget=forms.RadioSelect,
        error_messages=VISIBILITY_ERRORS,
    )
    groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    collection = forms.ModelChoiceField(
        queryset=Collection.objects.none(),
        to_field_name="public_id",
        required=False,
        empty_label="None",
        help_text="Optional. Also put the document in one of your collections.",
        error_messages={"invalid_choice": "You have no collection with that id."},
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["groups"].queryset = groups_for(user)
        self.fields["collection"].queryset = Collection.objects.changeable_by(user).order_by("name", "pk")
        self.fields["file"].widget.attrs["accept"] = ".pdf,.docx,.md,.markdown,.html,.htm,.txt,.text"


class AdminUploadForm(UploadFieldsMixin, forms.ModelForm):
    """The "add document" form in Django admin: upload a file for any owner.

    Validation only; ``DocumentAdmin.save_model`` stores the upload through ``upload()``.
    """

    file = forms.FileField(label="File", help_text=FILE_HELP, allow_empty_file=True)
    title = forms.CharField(
        max_length=DOCUMENT_TITLE_MAX_LENGTH,
        required=False,
        help_text="Optional. Defaults to the file's title.",
        error_messages=TITLE_ERRORS,
    )
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))
    visibility = forms.ChoiceField(
        choices=Visibility.choices, initial=Visibility.PRIVATE, error_messages=VISIBILITY_ERRORS
    )
    groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"), required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Document
        fields = ["file", "title", "owner", "visibility", "groups"]

    def clean(self):
        cleaned = super().clean()
        # The service checks the quota too, but the admin shows only form errors: refuse here.
        file, owner = cleaned.get("file"), cleaned.get("owner")
        if file is not None and owner is not None:
            try:
                services.check_quota(owner, len(file.data), hashlib.sha256(file.data).hexdigest())
            except services.UploadError as exc:
                self.add_error("file", forms.ValidationError(exc.message, code=exc.code))
        return cleaned

    def _post_clean(self) -> None:
        # ModelForm would build a Document from the fields and validate it (a blank title
        # would fail); the upload service builds the document from the bytes instead.
        pass

    def save(self, commit: bool = True) -> Document:
        """The unsaved placeholder the admin hands to ``save_model``, which stores the upload."""
        self.save_m2m = lambda: None  # the service sets the groups
        return self.instance


COLLECTION_DESCRIPTION_MAX_LENGTH = 2000


class CollectionForm(forms.ModelForm):
    """A collection's name, description and sharing, for the site, the API and the admin."""

    class Meta:
        model = Collection
        fields = ["name", "description", "visibility", "groups"]
        error_messages = {
            "name": {
                "required": "A collection needs a name.",
                "max_length": f"The name is too long (at most {COLLECTION_NAME_MAX_LENGTH} characters).",
            },
            "visibility": VISIBILITY_ERRORS,
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        # The user's groups, and those it is shared with already (an owner who has left one
        # can still rename the collection without unsharing it).
        groups = groups_for(user)
        if self.instance.pk:
            groups = (groups | self.instance.groups.all()).distinct().order_by("name")
        self.fields["groups"].queryset = groups
        self.fields["groups"].required = False

    def clean_name(self) -> str:
        name = " ".join((self.cleaned_data.get("name") or "").split())
        if not name:
            raise forms.ValidationError("A collection needs a name.")
        owner = self.instance.owner if self.instance.pk else self.user
        taken = Collection.objects.filter(owner=owner, name__iexact=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"You already have a collection called “{name}”.")
        return name

    def clean_description(self) -> str:
        description = (self.cleaned_data.get("description") or "").strip()
        if len(description) > COLLECTION_DESCRIPTION_MAX_LENGTH:
            raise forms.ValidationError(
                f"The description is too long (at most {COLLECTION_DESCRIPTION_MAX_LENGTH} characters)."
            )
        return description

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("visibility") == Visibility.GROUPS and not cleaned.get("groups"):
            self.add_error("groups", "Choose at least one group to share the collection with.")
        return cleaned

    def save(self, commit: bool = True) -> Collection:
        collection = super().save(commit=False)
        if collection.pk is None:
            collection.owner = self.user
        return services.save_collection(collection, self.cleaned_data.get("groups") or [])
