"""GET /api/v1/schema/ is a valid OpenAPI 3 document of every endpoint; /api/v1/docs/ is Swagger UI, self-hosted."""

import re

import pytest
import yaml
from drf_spectacular.validation import validate_schema

from .conftest import CALLERS

ENDPOINTS = {
    "/api/v1/": {"get"},
    "/api/v1/search/": {"post"},
    "/api/v1/images/": {"get", "post"},
    "/api/v1/images/{id}/": {"get", "patch"},
    "/api/v1/images/{id}/similar/": {"get"},
    "/api/v1/index/rebuild/": {"post"},
    "/api/v1/jobs/": {"get"},
    "/api/v1/jobs/{id}/": {"get"},
    "/api/v1/models/": {"get"},
    "/api/v1/models/train/": {"post"},
    "/api/v1/models/{id}/activate/": {"post"},
    "/api/v1/duplicates/": {"get"},
    "/api/v1/duplicates/find/": {"post"},
    "/api/v1/duplicates/{id}/resolve/": {"post"},
}


@pytest.fixture
def schema(client, db) -> dict:
    response = client.get("/api/v1/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)


def test_schema_lists_every_endpoint_and_nothing_else(schema):
    documented = {path: set(operations) - {"parameters"} for path, operations in schema["paths"].items()}
    assert documented == ENDPOINTS


def test_uploads_are_multipart_with_a_binary_image(schema):
    for path in ("/api/v1/search/", "/api/v1/images/"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]
        assert set(body) == {"multipart/form-data"}
        ref = body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
        component = schema["components"]["schemas"][ref]
        assert component["properties"]["image"] == {**component["properties"]["image"], "format": "binary"}
        # A search may go without an image when it gives positive ids (relevance feedback).
        assert ("image" in component.get("required", [])) == (path == "/api/v1/images/")


def test_search_answer_and_errors_are_described(schema):
    search = schema["paths"]["/api/v1/search/"]["post"]["responses"]
    assert {"200", "400", "413", "415", "429", "503"} <= set(search)
    answer = schema["components"]["schemas"]["SearchAnswer"]
    assert {"results", "predicted_label", "model_version", "index_version", "took_ms"} <= set(answer["required"])
    hit = schema["components"]["schemas"]["SearchHit"]
    assert {"id", "score", "similarity", "label", "image_url"} <= set(hit["required"])
    assert hit["properties"]["similarity"] | {"minimum": 0, "maximum": 1} == hit["properties"]["similarity"]
    assert search["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert schema["paths"]["/api/v1/index/rebuild/"]["post"]["responses"].keys() >= {"202", "401", "403"}


def test_schema_as_json(client, db):
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200 and response.json()["info"]["title"] == "GeoSim API"


@pytest.mark.parametrize("who", CALLERS)
def test_docs_page_for_anyone_with_local_assets_only(callers, who):
    response = callers[who].get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "/api/v1/schema/" in html
    hosts = set(re.findall(r"https?://([^/\"'\s)]+)", html))
    assert hosts <= {"testserver"}, hosts
    assets = re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", html)
    assert any("swagger-ui-bundle" in a for a in assets)
    for asset in assets:
        assert callers[who].get(asset).status_code == 200, asset


@pytest.mark.parametrize("path", ["/api/v1/images/", "/api/v1/jobs/", "/api/v1/duplicates/"])
def test_lists_document_invalid_page_and_page_size_answers(schema, path):
    operation = schema["paths"][path]["get"]
    assert "Invalid page." in operation["responses"]["404"]["description"]
    assert "400" in operation["responses"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert parameters["page"]["schema"]["minimum"] == 1


def test_label_filter_documents_its_pattern(schema):
    import re

    from search.labels import INPUT_PATTERN

    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/images/"]["get"]["parameters"]}
    patterns = [choice.get("pattern") for choice in parameters["label"]["schema"]["oneOf"]]
    assert INPUT_PATTERN in patterns
    assert re.match(INPUT_PATTERN, " Banded Gneiss") and not re.match(INPUT_PATTERN, "<b>")
