"""Serving uploaded images safely.

Stored files only ever have image extensions (the format is decided by decoding, not by the upload's
name), and every answer also forbids sniffing and sandboxes the file, so an upload can never be
rendered as HTML or run script in GeoSim's origin.

Media on the local disk are served by Django's static view; media in object storage
(``GEOSIM_STORAGE_URL=s3://...``) are streamed from the store, so the bucket can stay private.
"""

import logging

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.views.static import serve

from geosim_site.storage import is_local

logger = logging.getLogger(__name__)
_OBJECT_STORE_ERRORS = (BotoCoreError, ClientError)
_ALLOWED_PREFIXES = ("images/", "thumbnails/")
_IMAGE_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "gif": "image/gif",
}


def serve_media(request, path: str):
    extension = path.rsplit(".", 1)[-1].lower()
    if not path.startswith(_ALLOWED_PREFIXES) or extension not in _IMAGE_TYPES:
        raise Http404("No such image.")
    if is_local(default_storage):
        response = serve(request, path, document_root=settings.MEDIA_ROOT)
    else:
        try:
            response = _from_object_store(path)
        except _OBJECT_STORE_ERRORS as exc:  # unreachable or failing: say so, and let nothing cache it
            logger.warning("Object store unavailable while serving %s: %s", path, exc)
            unavailable = HttpResponse("The image store is unavailable; try again later.", status=503)
            unavailable["Content-Type"] = "text/plain; charset=utf-8"
            unavailable["Cache-Control"] = "no-store"
            unavailable["Retry-After"] = "30"
            return unavailable
    response["Content-Type"] = _IMAGE_TYPES[extension]
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "public, max-age=31536000, immutable"  # content-addressed: never changes
    return response


def _from_object_store(path: str) -> FileResponse:
    try:
        handle = default_storage.open(path, "rb")
    except FileNotFoundError:
        raise Http404("No such image.") from None
    return FileResponse(handle)
