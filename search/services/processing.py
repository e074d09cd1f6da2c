"""Processing new images in the background: display thumbnails, embeddings, then the live index."""

from __future__ import annotations

from django.conf import settings

from search.imaging import THUMBNAIL_EDGE, decode_image, make_thumbnail
from search.models import Image, Job
from search.services.indexing import embed_missing, index_add_images, index_model_version, index_remove_images
from search.services.jobs import JobProgress
from search.stored_files import store_verified


def images_process(job: Job, progress: JobProgress) -> dict:
    """Handle a PROCESS job: thumbnails for large images, embed, add to the live index (no rebuild)."""
    image_ids = job.params.get("image_ids", [])
    progress.set_total(len(image_ids))
    thumbnails = 0
    large = Image.objects.filter(pk__in=image_ids, thumbnail="").only("pk", "file", "sha256", "width", "height")
    for image in large.iterator():
        if max(image.width, image.height) > THUMBNAIL_EDGE:
            thumbnails += _make_thumbnail(image)
    model_version = index_model_version()
    embedded = embed_missing(model_version, image_ids=image_ids, on_batch=progress.advance)
    version = index_add_images(image_ids)
    progress.advance(0, force=True)
    return {
        "images": len(image_ids),
        "thumbnails": thumbnails,
        "embedded": embedded,
        "model_version": model_version.name,
        "index_version": version.version,
    }


def images_unindex(job: Job, progress: JobProgress) -> dict:
    """Handle a REMOVE job: take deleted images out of the live index."""
    image_ids = job.params.get("image_ids", [])
    progress.set_total(len(image_ids))
    version = index_remove_images(image_ids)
    progress.advance(len(image_ids), force=True)
    return {"removed": len(image_ids), "index_version": version.version if version else None}


def _make_thumbnail(image: Image) -> bool:
    with image.file.open("rb") as handle:
        decoded = decode_image(handle.read(), max_pixels=settings.GEOSIM_MAX_PIXELS)
    data = make_thumbnail(decoded.image)
    if data is None:
        return False
    name = store_verified(f"thumbnails/{image.sha256[:2]}/{image.sha256}.webp", data)
    Image.objects.filter(pk=image.pk).update(thumbnail=name)
    return True
