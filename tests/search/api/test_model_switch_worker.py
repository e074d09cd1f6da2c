"""Activating another model with a real worker over Redis: searches switch to it, and no request fails meanwhile."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from rest_framework.test import APIClient

from search.models import IndexVersion, Job, ModelVersion
from search.services import indexing
from search.services.ingestion import image_ingest
from search.services.model_versions import model_version_register
from tests.conftest import image_bytes
from tests.search.test_worker import wait_for_job

from .conftest import SEARCH_URL, upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_activation_switches_search_with_no_request_failing(celery_worker, monkeypatch, other_tiny_checkpoint):
    for i in range(30):
        image_ingest(data=image_bytes(seed=i), label=("gneiss", "schist")[i % 2])
    deadline = time.monotonic() + 60
    while not IndexVersion.objects.filter(is_active=True, vector_count=30).exists():
        assert time.monotonic() < deadline, "the collection was not indexed"
        time.sleep(0.05)
    old = ModelVersion.objects.get(is_active=True)
    new = model_version_register(other_tiny_checkpoint, name="lab model")
    real_build = indexing.build_index

    def slow_build(*args, **kwargs):
        time.sleep(1.0)  # the worker is mid-switch while the searches run
        return real_build(*args, **kwargs)

    monkeypatch.setattr(indexing, "build_index", slow_build)
    answered, failures = [], []
    stop = threading.Event()

    def search_until_stopped():
        client = APIClient()
        try:
            while not stop.is_set():
                response = client.post(SEARCH_URL, {"image": upload(image_bytes(seed=3)), "k": 3})
                if response.status_code != 200:
                    failures.append((response.status_code, response.content[:200]))
                    continue
                body = response.json()
                answered.append((body["model_version"], len(body["results"])))
        finally:
            connections.close_all()

    searcher = threading.Thread(target=search_until_stopped)
    searcher.start()
    try:
        time.sleep(0.3)  # some answers from the old model first
        job = indexing.model_version_activate(new)
        assert wait_for_job(job.pk, timeout=120).status == Job.Status.SUCCEEDED
        time.sleep(0.5)  # and some from the new one
    finally:
        stop.set()
        searcher.join(timeout=30)
    assert failures == []
    models = [name for name, _ in answered]
    assert models[0] == old.name and models[-1] == "lab model"
    switched = models.index("lab model")
    assert set(models[switched:]) == {"lab model"}  # once switched, never back
    assert all(count == 3 for _, count in answered)
    new.refresh_from_db()
    assert new.is_active and not ModelVersion.objects.get(pk=old.pk).is_active
    assert IndexVersion.objects.get(is_active=True).model_version_id == new.pk
