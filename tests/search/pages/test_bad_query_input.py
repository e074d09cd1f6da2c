"""Bad query strings and broken stored files are answered with a clear 4xx/503, never a 500.

Run on Postgres (as CI does) for the NUL cases: Postgres refuses NUL in text, SQLite does not.
"""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from rest_framework.test import APIClient

from search.models import Embedding
from tests.faults.conftest import free_port

from .conftest import add_images

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("raw", ["²", "١٢", "12a", "-1", "99999999999999999999999"])
def test_a_collection_search_by_a_non_number_is_a_400_page(client, raw):
    response = client.get("/", {"image": raw})
    assert response.status_code == 400
    assert "is not an image number" in response.content.decode()


NUL = "gne\x00iss"


def test_nul_in_the_api_list_label_filter_is_a_400_json(db):
    response = APIClient().get("/api/v1/images/", {"label": NUL})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_nul_in_the_page_grid_filter_is_a_400_page(client):
    response = client.get("/", {"grid_label": NUL})
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.parametrize("param", ["label", "label__exact", "q", "source"])
def test_nul_in_an_admin_list_filter_is_a_400(admin_client, param):
    response = admin_client.get("/admin/search/image/", {param: NUL})
    assert response.status_code == 400


@pytest.fixture
def unreadable_unembedded(indexed):
    """A collection image that has no embedding yet (its job has not run) and whose stored file is gone."""
    image = add_images(1, start=100)[0]
    assert not Embedding.objects.filter(image=image).exists()
    default_storage.delete(image.file.name)
    return image


def test_image_page_of_an_unreadable_unembedded_image_explains_instead_of_500(client, unreadable_unembedded):
    response = client.get(f"/images/{unreadable_unembedded.pk}/")
    assert response.status_code == 200
    assert "stored file cannot be read" in response.content.decode()


def test_collection_search_with_an_unreadable_unembedded_image_is_a_422(client, unreadable_unembedded):
    page = client.get("/", {"image": unreadable_unembedded.pk})
    assert page.status_code == 422 and "stored file cannot be read" in page.content.decode()
    api = APIClient().get(f"/api/v1/images/{unreadable_unembedded.pk}/similar/")
    assert api.status_code == 422 and api.json()["error"]["code"] == "image_unreadable"


@pytest.fixture
def staff_browser(transactional_db, django_user_model):
    """A logged-in staff user's browser (its session lives in the database)."""
    from django.test import Client

    browser = Client(raise_request_exception=False)
    browser.force_login(django_user_model.objects.create_user("curator", is_staff=True, is_superuser=True))
    return browser


@pytest.fixture
def database_down(transactional_db, staff_browser):
    """The database refuses connections (its port has nothing listening), as while Postgres restarts."""
    if connection.vendor != "postgresql":
        pytest.skip("needs Postgres (set DATABASE_URL): this is the Postgres-down case")
    real_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    yield
    connection.close()
    connection.settings_dict["PORT"] = real_port


@pytest.mark.parametrize("path", ["/", "/explore/", "/jobs/", "/admin/search/image/"])
def test_pages_answer_503_while_the_database_is_down(staff_browser, database_down, path):
    response = staff_browser.get(path)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "Temporarily unavailable" in response.content.decode()


def test_the_api_answers_json_503_while_the_database_is_down(database_down):
    from django.test import Client

    response = Client(raise_request_exception=False).get("/api/v1/images/")
    assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
