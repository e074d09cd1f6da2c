"""Property-based API testing with schemathesis against /api/v1/schema/: no input ever yields a 5xx.

Every operation of the schema is called with generated (valid and invalid) data, anonymously; the
check is that no answer is a server error other than the documented 503 of a missing index.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from geosim_site.wsgi import application
from search.services.ingestion import image_ingest
from tests.conftest import clear_throttle_counters, image_bytes


@pytest.fixture
def api_schema(transactional_db, settings_fixture_rate_off):
    for i in range(6):
        image_ingest(data=image_bytes(seed=i), label=("gneiss", "schist", "marble")[i % 3])
    return schemathesis.openapi.from_wsgi("/api/v1/schema/", application)


@pytest.fixture
def settings_fixture_rate_off(settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    settings.GEOSIM_SEARCH_RATE = settings.GEOSIM_UPLOAD_RATE = None  # as in a load test: GEOSIM_*_RATE=off
    clear_throttle_counters()


@pytest.mark.slow
def test_no_server_errors(api_schema):
    failures, calls = [], 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            nonlocal calls
            calls += 1
            response = case.call()
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:300]}")
            content_type = str(response.headers.get("content-type") or response.headers.get("Content-Type"))
            if response.status_code >= 400 and "application/json" not in content_type:
                failures.append(f"{case.method} {case.formatted_path} → {response.status_code} is {content_type}")

        check()
    assert calls >= 100
    assert failures == []
