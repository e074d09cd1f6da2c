"""Security: safe media serving, headers, CSRF, production checks."""

import os
import subprocess
import sys

import pytest
from django.test import Client

from search.services.ingestion import image_ingest
from tests.conftest import REPO_ROOT, image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_uploaded_images_are_served_as_sandboxed_images(client):
    image, _ = image_ingest(data=image_bytes(seed=1, fmt="PNG"))
    response = client.get(image.file.url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert b"".join(response.streaming_content) == image_bytes(seed=1, fmt="PNG")


@pytest.mark.parametrize(
    "path", ["/media/geosim.sqlite3", "/media/../geosim_site/settings.py", "/media/images/x.html", "/media/index/"]
)
def test_media_outside_images_is_not_served(client, path):
    assert client.get(path).status_code == 404


def test_html_named_jpg_is_never_stored():
    from search.imaging import ImageRejected

    with pytest.raises(ImageRejected):
        image_ingest(data=b"<html><script>alert(1)</script></html>", original_name="evil.jpg")


def test_security_headers_on_pages(client):
    response = client.get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_forms_require_csrf(django_user_model):
    django_user_model.objects.create_user("staff", password="pw-staff-12345", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "staff", "password": "pw-staff-12345"})
    assert response.status_code == 403


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="geosim_site.settings",
        SECRET_KEY="k" * 20 + "Zq8!x#2Lp@9sVw$4Rt&6Yu*1Ni^3Me%7Bo(5Cd)0",
        ALLOWED_HOSTS="geosim.example.org",
        GEOSIM_HTTPS="1",
        GEOSIM_DATA_DIR=str(tmp_path),
    )
    # A deployment collects its static files (`check --deploy` says so when it has not: geosim.W001).
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
