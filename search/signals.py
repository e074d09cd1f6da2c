"""Keep files and the index consistent with deletions, whatever deletes an image (admin, shell, API)."""

from __future__ import annotations

import threading

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from search.models import Image, Job
from search.services.jobs import job_create

_removed_lock = threading.Lock()
_removed_ids: set[int] = set()


@receiver(post_delete, sender=Image)
def image_deleted(sender, instance: Image, **kwargs) -> None:
    names = [name for name in (instance.file.name, instance.thumbnail.name) if name]
    with _removed_lock:
        _removed_ids.add(instance.pk)

    def after_commit() -> None:
        for name in names:
            default_storage.delete(name)
        _queue_removals()

    transaction.on_commit(after_commit)


def _queue_removals() -> None:
    """One REMOVE job for all images deleted so far (a bulk delete of 1,000 images makes one job)."""
    with _removed_lock:
        ids = sorted(_removed_ids)
        _removed_ids.clear()
    if not ids:
        return
    # Ids whose deletion was rolled back still exist and stay indexed.
    gone = sorted(set(ids) - set(Image.objects.filter(pk__in=ids).values_list("pk", flat=True)))
    if gone:
        with transaction.atomic():
            job_create(kind=Job.Kind.REMOVE, total=len(gone), params={"image_ids": gone})
