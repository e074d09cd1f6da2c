"""python manage.py create_api_token USERNAME [--rotate]"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print the API token of a staff user, creating it if needed (--rotate replaces it). "
        "Scripts send it as `Authorization: Token <key>`; it grants what the user may do: uploads and rebuilds."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="revoke the current token and issue a new one")

    def handle(self, *args, username: str, rotate: bool, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}. Create one with `manage.py createsuperuser`.")
        if not user.is_active:
            raise CommandError(f"{username!r} is inactive: an inactive user's token is refused.")
        if not user.is_staff:
            raise CommandError(
                f"{username!r} is not staff. API tokens are for scripts that write (uploads, index rebuilds), "
                "which only staff may do; reads and searches need no token."
            )
        if rotate:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
