"""Keep files and the index consistent with deletions, whatever deletes an image (admin, shell, API),
and label-filtered searches consistent with rock-type edits (admin form, API, anything that saves).

Deleted ids are collected per database connection — that is, per thread and per transaction — and
sent as one REMOVE job when that transaction commits (a bulk delete of 1,000 images makes one job).
A set shared by all threads would let one thread's commit take another's still-uncommitted deletions,
find those images still present, drop them, and leave their vectors in the index for good.
"""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.db import connections, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from search import live_index
from search.models import Image, Job
from search.services.jobs import job_create

_PENDING_ATTRIBUTE = "geosim_deleted_image_ids"


@receiver(post_delete, sender=Image)
def image_deleted(sender, instance: Image, using: str, **kwargs) -> None:
    names = [name for name in (instance.file.name, instance.thumbnail.name) if name]
    _pending_ids(using).add(instance.pk)

    def after_commit() -> None:
        for name in names:
            default_storage.delete(name)
        _queue_removals(using)

    # One callback per deletion, each draining the connection's set: if a savepoint holding the first
    # deletion is rolled back, its callback is dropped, and a later one still sends the rest.
    transaction.on_commit(after_commit, using=using)


def _pending_ids(using: str) -> set[int]:
    # connections[using] is this thread's own connection object, so no lock is needed.
    connection = connections[using]
    pending = getattr(connection, _PENDING_ATTRIBUTE, None)
    if pending is None:
        pending = set()
        setattr(connection, _PENDING_ATTRIBUTE, pending)
    return pending


def _queue_removals(using: str) -> None:
    """One REMOVE job for the images this connection's committed transaction deleted."""
    pending = _pending_ids(using)
    ids = sorted(pending)
    pending.clear()
    if not ids:
        return
    # Ids whose deletion was rolled back (in a savepoint) still exist and stay indexed.
    gone = sorted(set(ids) - set(Image.objects.using(using).filter(pk__in=ids).values_list("pk", flat=True)))
    if gone:
        with transaction.atomic(using=using):
            job_create(kind=Job.Kind.REMOVE, total=len(gone), params={"image_ids": gone})


@receiver(post_save, sender=Image)
def image_saved(sender, instance: Image, created: bool, update_fields=None, **kwargs) -> None:
    # A new image reaches searches with a new index version; an edited rock type must reach the cached
    # label ids of the live one. Bulk updates send no signal: their callers call labels_changed themselves.
    if not created and (update_fields is None or "label" in update_fields):
        live_index.labels_changed()
