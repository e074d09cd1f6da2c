"""Processing new images in the background: display thumbnails, then embeddings and the live index."""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from search.imaging import decode_image, make_thumbnail
from search.models import Image, Job
from search.services.jobs import JobProgress


def images_process(job: Job, progress: JobProgress) -> dict:
    """Handle a PROCESS job: make thumbnails for the job's images (large ones only)."""
    image_ids = job.params.get("image_ids", [])
    progress.set_total(len(image_ids))
    thumbnails = missing = 0
    for image in Image.objects.filter(pk__in=image_ids).only("pk", "file", "sha256", "thumbnail").iterator():
        if _make_thumbnail(image):
            thumbnails += 1
        progress.advance()
    missing = len(image_ids) - progress.job.done
    progress.advance(0, force=True)
    return {"images": progress.job.done, "thumbnails": thumbnails, "missing": missing}


def _make_thumbnail(image: Image) -> bool:
    if image.thumbnail:
        return False
    with image.file.open("rb") as handle:
        decoded = decode_image(handle.read(), max_pixels=settings.GEOSIM_MAX_PIXELS)
    data = make_thumbnail(decoded.image)
    if data is None:
        return False
    name = f"thumbnails/{image.sha256[:2]}/{image.sha256}.webp"
    if not default_storage.exists(name):
        default_storage.save(name, ContentFile(data))
    Image.objects.filter(pk=image.pk).update(thumbnail=name)
    return True
