"""The life of a background job: create, enqueue after commit, claim, report progress, finish.

Every piece of background work is a :class:`~search.models.Job` row first and a Celery message
second. The row is the truth: if the broker is down when the message should be sent, the job stays
``pending`` and :func:`jobs_enqueue_pending` (run at worker start and periodically) sends it later.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from search.models import Job

logger = logging.getLogger(__name__)

_PROGRESS_INTERVAL_S = 0.5
MAX_ATTEMPTS = 3
QUEUE_UNREACHABLE = "Waiting: the task queue (Redis) is unreachable; this job runs as soon as it is back."
_RETRIED_KINDS = (Job.Kind.PROCESS, Job.Kind.REMOVE)
# Long work goes to its own Celery queue, so a training run never holds the slot that indexing
# and uploads need (docker-compose runs a worker for each queue); the default queue is "celery".
TRAINING_QUEUE = "training"
_QUEUE_FOR_KIND = {Job.Kind.TRAIN_MODEL: TRAINING_QUEUE}


class JobProgress:
    """Records done/total on the job row, at most every half second so progress costs nothing."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._last_write = 0.0

    def set_total(self, total: int) -> None:
        self.job.total = total
        Job.objects.filter(pk=self.job.pk).update(total=total)

    def advance(self, count: int = 1, *, force: bool = False) -> None:
        self.job.done += count
        now = time.monotonic()
        if force or now - self._last_write >= _PROGRESS_INTERVAL_S:
            self._last_write = now
            total = max(self.job.total, 1)
            self.job.progress = min(self.job.done / total, 1.0)
            Job.objects.filter(pk=self.job.pk).update(done=self.job.done, progress=self.job.progress)

    def report(self, **details) -> None:
        """Show details of a running job (e.g. the last epoch's metrics) in its ``result`` right away."""
        self.job.result = {**(self.job.result or {}), **details}
        Job.objects.filter(pk=self.job.pk).update(result=self.job.result)


def job_create(*, kind: str, total: int = 0, params: dict | None = None, created_by=None) -> Job:
    """Create a pending job and send it to a worker once the surrounding transaction commits."""
    job = Job.objects.create(kind=kind, total=total, params=params or {}, created_by=created_by)
    transaction.on_commit(lambda: job_enqueue(job.pk, kind=job.kind))
    return job


def job_queue(kind: str) -> str:
    """The Celery queue that jobs of a kind are sent to."""
    return _QUEUE_FOR_KIND.get(kind, "celery")


def job_enqueue(job_id: int, *, kind: str | None = None) -> bool:
    """Send a job to the workers; on a broker failure keep it pending for the sweep and return False.

    With in-process tasks (the embedded mode) a training job runs in a background thread instead,
    so the request or command that started it answers at once, as it does with a real worker.
    """
    from search.tasks import run_job

    kind = kind or Job.objects.filter(pk=job_id).values_list("kind", flat=True).first()
    if run_job.app.conf.task_always_eager and kind in _QUEUE_FOR_KIND:
        threading.Thread(target=_execute_in_thread, args=(job_id,), name=f"job-{job_id}", daemon=True).start()
        return True
    try:
        run_job.apply_async((job_id,), queue=job_queue(kind))
    except Exception as exc:  # kombu/redis raise several types when the broker is unreachable
        logger.warning("Job %s stays pending: the task queue is unreachable (%s).", job_id, exc)
        Job.objects.filter(pk=job_id, status=Job.Status.PENDING).update(error=QUEUE_UNREACHABLE)
        return False
    return True


def job_execute(job_id: int, *, heartbeat: bool = False) -> None:
    """Claim a pending job and run its handler; record success or the error on the row.

    With ``heartbeat`` (real workers), a thread stamps ``heartbeat_at`` every few seconds while the
    handler runs, so a job whose worker was killed is recognised by :func:`jobs_recover_stale`.
    """
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.PENDING).update(
        status=Job.Status.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1, error=""
    )
    if not claimed:
        logger.info("Job %s is not pending (already running, finished or deleted); skipped.", job_id)
        return
    job = Job.objects.get(pk=job_id)
    handler = _handler_for(job.kind)
    progress = JobProgress(job)
    beat = _Heartbeat(job.pk) if heartbeat else contextlib.nullcontext()
    try:
        with beat:
            result = handler(job, progress)
    except Exception as exc:
        logger.exception("Job %s (%s) failed.", job.pk, job.kind)
        job_fail(job, f"{type(exc).__name__}: {exc}", detail=traceback.format_exc())
        return
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED,
        progress=1.0,
        done=progress.job.done,
        result=result or {},
        finished_at=timezone.now(),
    )


def job_fail(job: Job, error: str, *, detail: str = "") -> None:
    """Mark a job failed with a human-readable error (the traceback goes to the log, not the row)."""
    if detail:
        logger.debug(detail)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error=error[:4000], finished_at=timezone.now())


def jobs_enqueue_pending(*, older_than: timedelta = timedelta(seconds=30)) -> int:
    """Re-send pending jobs that no worker has picked up (the broker was down when they were made).

    Sending a job twice is harmless: only one worker can claim a pending job.
    """
    cutoff = timezone.now() - older_than
    ids = list(Job.objects.filter(status=Job.Status.PENDING, created_at__lte=cutoff).values_list("pk", "kind"))
    sent = sum(job_enqueue(job_id, kind=kind) for job_id, kind in ids)
    if ids:
        logger.info("Sweep: re-sent %s of %s pending jobs.", sent, len(ids))
    return sent


def jobs_recover_stale(*, stale_after: timedelta | None = None) -> list[int]:
    """Fail running jobs whose worker stopped sending heartbeats; retry the idempotent kinds.

    Processing and removal jobs are safe to run again, so each gets a fresh pending copy (up to
    MAX_ATTEMPTS in all). A rebuild is only marked failed: the old index keeps serving, and the next
    rebuild starts from the stored embeddings. Returns the ids of the jobs marked failed.
    """
    stale_after = stale_after or timedelta(seconds=settings.GEOSIM_JOB_STALE_SECONDS)
    cutoff = timezone.now() - stale_after
    stale = list(Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff))
    recovered = []
    for job in stale:
        message = (
            f"The worker running this job stopped before it finished (no heartbeat since "
            f"{job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)."
        )
        with transaction.atomic():
            if not Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.FAILED, error=message, finished_at=timezone.now()
            ):
                continue  # it finished after all
            recovered.append(job.pk)
            if job.kind in _RETRIED_KINDS and job.attempts < MAX_ATTEMPTS:
                retry = job_create(kind=job.kind, total=job.total, params=job.params, created_by=job.created_by)
                Job.objects.filter(pk=retry.pk).update(attempts=job.attempts)
                logger.warning("Job %s: %s Retrying as job %s.", job.pk, message, retry.pk)
            else:
                logger.warning("Job %s: %s", job.pk, message)
    return recovered


def _execute_in_thread(job_id: int) -> None:
    try:
        job_execute(job_id)
    finally:
        connections.close_all()  # this thread's own database connection


class _Heartbeat:
    """A daemon thread stamping a running job's heartbeat_at until the block ends."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._stop.wait(settings.GEOSIM_JOB_HEARTBEAT_SECONDS):
                Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
        except Exception:  # a database hiccup: the next sweep decides, the job itself goes on
            logger.warning("Heartbeat of job %s stopped.", self.job_id, exc_info=True)
        finally:
            connections.close_all()


def _handler_for(kind: str) -> Callable:
    # Imported here: handlers live in the service module of their capability and import this one.
    from search.services import indexing, model_training, processing, projection

    handlers = {
        Job.Kind.PROCESS: processing.images_process,
        Job.Kind.REMOVE: processing.images_unindex,
        Job.Kind.REINDEX: indexing.index_rebuild,
        Job.Kind.ACTIVATE_MODEL: indexing.index_rebuild,
        Job.Kind.PROJECTION: projection.projection_compute,
        Job.Kind.TRAIN_MODEL: model_training.model_train,
    }
    try:
        return handlers[kind]
    except KeyError:
        raise ValueError(f"No handler for jobs of kind {kind!r}.") from None
