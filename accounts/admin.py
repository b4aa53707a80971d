"""Django admin for API tokens: see who has tokens and when they were used; revoke by deleting.

Tokens are created with ``manage.py create_api_token`` or on the user's "API tokens" page, because
the raw token must be shown to its owner exactly once; the admin shows only the stored hash.
"""

from __future__ import annotations

from django.contrib import admin

from accounts.forms import AdminSignInForm
from accounts.models import ApiToken

# The admin's sign-in page shows a lockout (accounts/throttling.py) as the site's does.
admin.site.login_form = AdminSignInForm


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "created", "last_used"]
    list_filter = [("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "user__username"]
    list_select_related = ["user"]
    fields = ["public_id", "user", "name", "token_hash", "created", "last_used"]
    readonly_fields = ["public_id", "user", "token_hash", "created", "last_used"]

    def has_add_permission(self, request) -> bool:
        return False
