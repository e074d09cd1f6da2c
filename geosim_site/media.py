"""Serving uploaded images safely.

Stored files only ever have image extensions (the format is decided by decoding, not by the upload's
name), and every answer also forbids sniffing and sandboxes the file, so an upload can never be
rendered as HTML or run script in GeoSim's origin.

Media on the local disk are served by Django's static view; media in object storage
(``GEOSIM_STORAGE_URL=s3://...``) are streamed from the store, so the bucket can stay private.
"""

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.views.static import serve

from geosim_site.storage import is_local

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
        response = _from_object_store(path)
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
