"""The S3 media storage: django-storages' S3Storage with verified writes and GeoSim's own URLs.

See :mod:`geosim_site.storage` for when it is used and why it differs from the library's defaults.

A write is one PUT of the whole file (media are bounded by ``GEOSIM_MAX_UPLOAD_BYTES``, far below S3's
5 GB single-PUT limit), which costs one round trip where the library's transfer manager starts a
thread pool per file. It carries ``Content-MD5``, so the server refuses a body damaged on the way
(``BadDigest``); the ETag it answers is the MD5 of what it stored, compared with what was sent. A
store whose ETags are not plain MD5s (AWS with SSE-KMS encryption, for one) gets the slower check:
the object is read back and its size and SHA-256 compared. Either way a mismatch removes the object
and raises :class:`StorageVerificationFailed`. Reading is one GET of the whole object, for the same
reason.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files import File
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

_READ_CHUNK = 1 << 20


class StorageVerificationFailed(OSError):
    """The object store holds (or received) something other than the bytes sent; nothing was kept."""


class S3MediaStorage(S3Storage):
    """S3 storage whose writes are verified and whose URLs go through GeoSim (see the module's doc)."""

    def _save(self, name, content):
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        content.seek(0)
        data = content.read()
        md5 = hashlib.md5(data, usedforsecurity=False)
        try:
            etag = self._put(key, data, content_md5=base64.b64encode(md5.digest()).decode(), content=content)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("BadDigest", "InvalidDigest"):
                raise StorageVerificationFailed(f"the store received a damaged copy of {cleaned}; refused") from exc
            raise
        if etag.strip('"') != md5.hexdigest() and self._stored_digest(key) != (len(data), _sha256(data)):
            self.delete(cleaned)
            raise StorageVerificationFailed(
                f"the stored copy of {cleaned} does not match what was sent; it was removed"
            )
        return cleaned

    def _put(self, key: str, data: bytes, *, content_md5: str, content) -> str:
        """One PUT of the whole object; returns the ETag the store answered."""
        params = self._get_write_parameters(key, content)
        client = self.connection.meta.client  # the client call: the resource layer costs more per request
        return client.put_object(Bucket=self.bucket_name, Key=key, Body=data, ContentMD5=content_md5, **params)["ETag"]

    def _open(self, name, mode="rb"):
        """Reading: one GET of the whole object (media are bounded by GEOSIM_MAX_UPLOAD_BYTES) instead of
        the library's HEAD, then GET into a spooled temporary file."""
        if mode != "rb":
            return super()._open(name, mode)
        key = self._normalize_name(clean_name(name))
        try:
            body = self.connection.meta.client.get_object(Bucket=self.bucket_name, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                raise FileNotFoundError(f"No object {key} in bucket {self.bucket_name}") from exc
            raise
        return File(io.BytesIO(body), name=name)

    def stored_size(self, name: str) -> int | None:
        """The stored object's size, or None when there is none (one HEAD request)."""
        try:
            head = self.connection.meta.client.head_object(Bucket=self.bucket_name, Key=self._normalize_name(name))
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return None
            raise
        return head["ContentLength"]

    # -- whole files of any size (index versions, checkpoints): search/object_sync.py ----------------

    def upload_path(self, name: str, path: Path) -> None:
        """Store the local file ``path`` under ``name``: streamed, in parts above boto3's multipart threshold.

        Not verified here: the caller records the file's SHA-256 and every reader checks it.
        """
        key = self._normalize_name(clean_name(name))
        self.connection.meta.client.upload_file(str(path), self.bucket_name, key)
        if self.stored_size(name) != path.stat().st_size:
            self.delete(name)
            raise StorageVerificationFailed(f"the stored copy of {name} has another size than {path}; it was removed")

    def download_path(self, name: str, path: Path) -> None:
        """Copy the object ``name`` into the local file ``path`` (streamed); FileNotFoundError when there is none."""
        key = self._normalize_name(clean_name(name))
        try:
            self.connection.meta.client.download_file(self.bucket_name, key, str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"No object {key} in bucket {self.bucket_name}") from exc
            raise

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose name starts with ``prefix``; returns how many."""
        key_prefix = self._normalize_name(clean_name(prefix))
        client = self.connection.meta.client
        deleted = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket_name, Prefix=key_prefix):
            keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.bucket_name, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted

    def _stored_digest(self, key: str) -> tuple[int, str]:
        """Size and SHA-256 of the object as the store returns it."""
        body = self.bucket.Object(key).get()["Body"]
        digest, size = hashlib.sha256(), 0
        for block in iter(lambda: body.read(_READ_CHUNK), b""):
            digest.update(block)
            size += len(block)
        return size, digest.hexdigest()

    def url(self, name, parameters=None, expire=None, http_method=None):
        if settings.DEBUG or settings.GEOSIM_SERVE_MEDIA:  # the /media/ route exists (geosim_site/urls.py)
            return f"{settings.MEDIA_URL}{name.lstrip('/')}"
        return super().url(name, parameters=parameters, expire=expire, http_method=http_method)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
