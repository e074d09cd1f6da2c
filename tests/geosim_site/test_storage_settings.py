"""GEOSIM_STORAGE_URL chooses where media live: the local disk by default, or an s3://bucket/prefix."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from geosim_site.storage import LOCAL_MEDIA_STORAGE, media_storage
from tests.conftest import REPO_ROOT

S3_BACKEND = "geosim_site.s3_storage.S3MediaStorage"


@pytest.mark.parametrize("unset", [None, ""])
def test_unset_keeps_media_on_the_local_disk(unset):
    assert media_storage(unset) == LOCAL_MEDIA_STORAGE


def test_s3_url_gives_bucket_and_prefix():
    config = media_storage("s3://geosim-media/labs/north/", endpoint_url="http://seaweedfs:8333")
    assert config["BACKEND"] == S3_BACKEND
    options = config["OPTIONS"]
    assert (options["bucket_name"], options["location"]) == ("geosim-media", "labs/north")
    assert options["endpoint_url"] == "http://seaweedfs:8333"
    assert options["addressing_style"] == "path"
    assert options["file_overwrite"] is True and options["default_acl"] is None


def test_s3_url_without_prefix_or_endpoint_is_aws_at_the_bucket_root():
    options = media_storage("s3://geosim-media")["OPTIONS"]
    assert options["location"] == ""
    assert "endpoint_url" not in options and "addressing_style" not in options


@pytest.mark.parametrize(
    "url", ["/data/media", "file:///data/media", "s3://", "s3:///prefix", "gs://bucket/x", "s3://bucket/p?x=1"]
)
def test_a_malformed_storage_url_fails_loudly(url):
    with pytest.raises(ImproperlyConfigured, match="GEOSIM_STORAGE_URL"):
        media_storage(url)


@pytest.mark.parametrize("endpoint", ["seaweedfs:8333", "ftp://seaweedfs", "http://"])
def test_a_malformed_endpoint_fails_loudly(endpoint):
    with pytest.raises(ImproperlyConfigured, match="GEOSIM_S3_ENDPOINT_URL"):
        media_storage("s3://bucket/media", endpoint_url=endpoint)


def test_settings_read_the_variables(tmp_path):
    environment = {
        "SECRET_KEY": "x" * 50,
        "GEOSIM_DATA_DIR": str(tmp_path),
        "GEOSIM_STORAGE_URL": "s3://geosim-media/media",
        "GEOSIM_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
    }
    result = _default_storage_in_a_fresh_process(environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["S3MediaStorage", "geosim-media", "media", "http://127.0.0.1:8333"]


def test_settings_refuse_a_malformed_storage_url(tmp_path):
    result = _default_storage_in_a_fresh_process(
        {"SECRET_KEY": "x" * 50, "GEOSIM_DATA_DIR": str(tmp_path), "GEOSIM_STORAGE_URL": "bucket/media"}
    )
    assert result.returncode != 0
    assert "GEOSIM_STORAGE_URL='bucket/media' is not understood" in result.stderr


def _default_storage_in_a_fresh_process(environment: dict[str, str]) -> subprocess.CompletedProcess:
    """Print the class, bucket, prefix and endpoint of the media storage the production settings build."""
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    clean.update({"DJANGO_SETTINGS_MODULE": "geosim_site.settings", **environment})
    code = (
        "import django; django.setup(); from django.core.files.storage import default_storage as s; "
        "print(s.__class__.__name__, s.bucket_name, s.location, s.endpoint_url)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=120
    )
