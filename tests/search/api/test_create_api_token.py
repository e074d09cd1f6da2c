"""manage.py create_api_token USERNAME: prints a staff user's token; refuses anyone else."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from .conftest import REBUILD_URL


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue().strip()


def test_prints_a_working_token_and_the_same_one_again(db):
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    key = run("ops")
    assert key == Token.objects.get(user=staff).key and len(key) == 40
    assert run("ops") == key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post(REBUILD_URL).status_code == 202


def test_rotate_revokes_the_old_token(db):
    get_user_model().objects.create_user("ops", is_staff=True)
    old = run("ops")
    new = run("ops", "--rotate")
    assert new != old
    assert not Token.objects.filter(key=old).exists()


@pytest.mark.parametrize(
    ("username", "kwargs", "reason"),
    [
        ("nobody", None, "No user"),
        ("viewer", {}, "not staff"),
        ("gone", {"is_staff": True, "is_active": False}, "inactive"),
    ],
)
def test_refuses_unknown_non_staff_and_inactive_users(db, username, kwargs, reason):
    if kwargs is not None:
        get_user_model().objects.create_user(username, **kwargs)
    with pytest.raises(CommandError, match=reason):
        run(username)
    assert not Token.objects.exists()
