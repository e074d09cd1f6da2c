"""Addresses a browser or a script tries first: /favicon.ico and the API's root /api/v1/."""

from urllib.parse import urlparse

import pytest
from django.urls import Resolver404, resolve


def test_favicon_ico_leads_to_the_site_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("geosim/favicon.svg")
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"


@pytest.mark.django_db
def test_api_root_lists_every_endpoint_and_each_resolves(client):
    response = client.get("/api/v1/")
    assert response.status_code == 200
    body = response.json()
    assert body["schema"] == "http://testserver/api/v1/schema/"
    assert body["docs"] == "http://testserver/api/v1/docs/"
    endpoints = body["endpoints"]
    assert endpoints["search"] == "http://testserver/api/v1/search/"
    assert endpoints["image-similar"] == "http://testserver/api/v1/images/{id}/similar/"
    assert {"search", "image-list", "image-detail", "image-similar", "index-rebuild", "job-list", "job-detail"} <= set(
        endpoints
    )
    for url in endpoints.values():
        path = urlparse(url).path.replace("{id}", "1")
        try:
            match = resolve(path)
        except Resolver404:
            pytest.fail(f"the API root lists {url}, which does not resolve")
        assert match.namespace == "api"


def test_api_root_without_slash_is_the_same(client, db):
    assert client.get("/api/v1").json()["name"] == "GeoSim API"
