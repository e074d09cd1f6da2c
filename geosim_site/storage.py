"""Where uploaded media (originals, thumbnails) live: the local disk, or S3-compatible object storage.

``GEOSIM_STORAGE_URL`` chooses. Unset (the default), media stay under ``GEOSIM_DATA_DIR/media`` on the
local disk. ``s3://bucket/prefix`` stores them in that bucket under that prefix through django-storages
and boto3; ``GEOSIM_S3_ENDPOINT_URL`` points at a server other than AWS (SeaweedFS, MinIO, Ceph...),
and boto3 reads the credentials (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, or an instance
role) itself. Several web and worker machines then share one copy of every file.

Two things differ from django-storages' defaults, on purpose:

- **Every write is verified.** An S3 PUT is atomic (a reader sees the whole object or none), but a
  proxy or a faulty server can still store something other than what was sent; so each PUT carries
  the body's MD5 (the server refuses a damaged body) and the MD5 the server answers is compared with
  it (or, where its ETags are not MD5s, the object is read back and its SHA-256 compared). A mismatch
  removes the object and raises ``StorageVerificationFailed`` (an ``OSError``, as a full disk would be).
- **URLs stay GeoSim's own** (``/media/<name>``) while ``GEOSIM_SERVE_MEDIA`` is on: the bucket can stay
  private and browsers never need to reach the object store; :mod:`geosim_site.media` streams the
  object. With ``GEOSIM_SERVE_MEDIA=0`` the URLs are the store's own (signed, expiring).

This module only reads the configuration (settings import it, so it must not import boto3); the
storage class itself is :class:`geosim_site.s3_storage.S3MediaStorage`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

LOCAL_MEDIA_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def media_storage(storage_url: str | None, *, endpoint_url: str | None = None) -> dict:
    """The ``STORAGES["default"]`` entry for ``GEOSIM_STORAGE_URL`` (fails loudly on a malformed URL)."""
    if not storage_url:
        return dict(LOCAL_MEDIA_STORAGE)
    parts = urlsplit(storage_url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"GEOSIM_STORAGE_URL={storage_url!r} is not understood: use s3://bucket/prefix "
            "(or leave it unset to keep media on the local disk)."
        )
    options = {
        "bucket_name": parts.netloc,
        "location": parts.path.strip("/"),
        "file_overwrite": True,  # names are content-addressed: the same name is the same bytes
        "default_acl": None,  # the bucket's own policy decides; GeoSim never makes objects public
    }
    if endpoint_url:
        endpoint = urlsplit(endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
            raise ImproperlyConfigured(
                f"GEOSIM_S3_ENDPOINT_URL={endpoint_url!r} is not an http(s) URL (e.g. http://seaweedfs:8333)."
            )
        # Servers other than AWS are addressed by path: http://host:port/bucket/key.
        options.update(endpoint_url=endpoint_url, addressing_style="path")
    return {"BACKEND": "geosim_site.s3_storage.S3MediaStorage", "OPTIONS": options}


def is_local(storage) -> bool:
    """Whether ``storage`` keeps files on this machine's disk (it can give a path)."""
    try:
        storage.path("")
    except NotImplementedError:
        return False
    return True
