"""What every API test needs: a client per kind of caller, a small searchable collection, error checks."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from search.archives import SourceFile
from search.models import Image
from search.services.ingestion import images_import
from tests.conftest import REPO_ROOT, clear_throttle_counters, image_bytes

SEARCH_URL = "/api/v1/search/"
IMAGES_URL = "/api/v1/images/"
REBUILD_URL = "/api/v1/index/rebuild/"
JOBS_URL = "/api/v1/jobs/"
LABELS = ("gneiss", "schist", "marble")

# Who calls, and what a write answers them (anonymous: 401, as the API asks for a token first).
CALLERS = ("anonymous", "user", "user_token", "staff", "staff_token")
WRITE_DENIED = {"anonymous": 401, "user": 403, "user_token": 403}


@pytest.fixture(autouse=True)
def api_defaults(settings):
    """No rate limits unless a test sets one, and no throttle counters carried between tests."""
    settings.GEOSIM_SEARCH_RATE = None
    settings.GEOSIM_UPLOAD_RATE = None
    clear_throttle_counters()
    yield
    clear_throttle_counters()


@dataclass
class Callers:
    anonymous: APIClient
    user: APIClient
    user_token: APIClient
    staff: APIClient
    staff_token: APIClient

    def __getitem__(self, who: str) -> APIClient:
        return getattr(self, who)


@pytest.fixture
def callers(db) -> Callers:
    """Anonymous, a logged-in user, a user's token, a logged-in staff user and a staff user's token."""
    users = get_user_model().objects
    user = users.create_user("user")  # no password: hashing one is slow, and force_login needs none
    staff = users.create_user("staff", is_staff=True)
    clients = {"anonymous": APIClient()}
    for name, account in (("user", user), ("staff", staff)):
        session = APIClient()
        session.force_login(account)
        token = APIClient()
        token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=account).key}")
        clients[name], clients[f"{name}_token"] = session, token
    return Callers(**clients)


@pytest.fixture
def collection(transactional_db) -> list[Image]:
    """Six indexed images (one import batch, in-process tasks), labels cycling through gneiss, schist, marble."""
    files = [SourceFile(name=f"{i}.jpg", data=image_bytes(seed=i), label=LABELS[i % 3]) for i in range(6)]
    summary = images_import(files)
    return list(Image.objects.filter(pk__in=summary.image_ids).order_by("pk"))


def upload(data: bytes | None = None, *, name: str = "rock.jpg", content_type: str = "image/jpeg"):
    """A multipart file for the test client."""
    return SimpleUploadedFile(name, image_bytes(seed=1000) if data is None else data, content_type=content_type)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is the API's JSON error document with this status (and code); returns its error."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = json.loads(response.content)["error"]
    assert error["status"] == status
    assert error["message"] and isinstance(error["message"], str)
    if code is not None:
        assert error["code"] == code, error
    text = response.content.decode()
    for leak in ("Traceback", 'File "', "site-packages", str(REPO_ROOT), tempfile.gettempdir()):
        assert leak not in text, text
    return error
