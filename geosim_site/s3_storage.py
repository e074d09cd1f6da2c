"""The S3 media storage: django-storages' S3Storage with verified writes and GeoSim's own URLs.

See :mod:`geosim_site.storage` for when it is used and why it differs from the library's defaults.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from storages.backends.s3 import S3Storage

_READ_CHUNK = 1 << 20


class StorageVerificationFailed(OSError):
    """The object store holds something other than the bytes just sent; the object was removed."""


class S3MediaStorage(S3Storage):
    """S3 storage whose writes are verified and whose URLs go through GeoSim (see the module's doc)."""

    def _save(self, name, content):
        content.seek(0)
        digest, size = hashlib.sha256(), 0
        for block in iter(lambda: content.read(_READ_CHUNK), b""):
            digest.update(block)
            size += len(block)
        saved = super()._save(name, content)
        stored = self._stored_digest(saved)
        if stored != (size, digest.hexdigest()):
            self.delete(saved)
            raise StorageVerificationFailed(
                f"the stored copy of {saved} does not match what was sent "
                f"({stored[0]} bytes stored, {size} sent); it was removed"
            )
        return saved

    def _stored_digest(self, name: str) -> tuple[int, str]:
        """Size and SHA-256 of the object as the store returns it."""
        body = self.bucket.Object(self._normalize_name(name)).get()["Body"]
        digest, size = hashlib.sha256(), 0
        for block in iter(lambda: body.read(_READ_CHUNK), b""):
            digest.update(block)
            size += len(block)
        return size, digest.hexdigest()

    def url(self, name, parameters=None, expire=None, http_method=None):
        if settings.DEBUG or settings.GEOSIM_SERVE_MEDIA:  # the /media/ route exists (geosim_site/urls.py)
            return f"{settings.MEDIA_URL}{name.lstrip('/')}"
        return super().url(name, parameters=parameters, expire=expire, http_method=http_method)
