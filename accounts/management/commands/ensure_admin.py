"""Create the first admin if the site has no superuser yet.

Honours Django's DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD / DJANGO_SUPERUSER_EMAIL;
without a password it generates one and prints it once.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin account when none exists (prints how to sign in)."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin account exists already.")
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL") or ""
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(self.style.SUCCESS(f"Created the admin account '{username}'."))
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"  Sign in at /accounts/login/ as '{username}' with password: {password}\n"
                    "  (shown only this once; change it under 'Password' after signing in)"
                )
            )
        else:
            self.stdout.write(f"  Sign in at /accounts/login/ as '{username}' with DJANGO_SUPERUSER_PASSWORD.")
