"""Deleting images in concurrent transactions: every deleted image leaves the index, whatever commits first."""

import threading

import pytest
from django.db import connection, transaction

from search import live_index
from search.models import Image, Job
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def _in_thread(target, errors: list) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_two_transactions_deleting_at_once_both_leave_the_index():
    if connection.vendor != "postgresql":
        pytest.skip("two concurrent writing transactions need Postgres (set DATABASE_URL)")
    first, second, kept = (image_ingest(data=image_bytes(seed=seed))[0] for seed in (1, 2, 3))
    assert live_index.current().index.ntotal == 3
    first_deleted, second_committed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def delete_first_and_commit_last() -> None:
        with transaction.atomic():
            Image.objects.get(pk=first.pk).delete()
            first_deleted.set()
            assert second_committed.wait(30)

    def delete_second_meanwhile() -> None:
        assert first_deleted.wait(30)
        with transaction.atomic():
            Image.objects.get(pk=second.pk).delete()
        second_committed.set()

    threads = [_in_thread(delete_first_and_commit_last, errors), _in_thread(delete_second_meanwhile, errors)]
    for thread in threads:
        thread.join(60)
    assert errors == []

    removed = sorted(pk for job in Job.objects.filter(kind=Job.Kind.REMOVE) for pk in job.params["image_ids"])
    assert removed == sorted([first.pk, second.pk])
    live_index.reset()
    index = live_index.current().index
    assert index.ids().tolist() == [kept.pk]


def test_a_rolled_back_deletion_stays_indexed_and_the_next_one_is_sent():
    image, other = (image_ingest(data=image_bytes(seed=seed))[0] for seed in (4, 5))
    with pytest.raises(RuntimeError), transaction.atomic():
        Image.objects.get(pk=image.pk).delete()
        raise RuntimeError("changed my mind")
    Image.objects.get(pk=other.pk).delete()
    assert [job.params["image_ids"] for job in Job.objects.filter(kind=Job.Kind.REMOVE)] == [[other.pk]]
    live_index.reset()
    assert live_index.current().index.ids().tolist() == [image.pk]
