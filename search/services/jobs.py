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
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from search.models import Job
from search.services import in_process

logger = logging.getLogger(__name__)

_PROGRESS_INTERVAL_S = 0.5
MAX_ATTEMPTS = 3
QUEUE_UNREACHABLE = "Waiting: the task queue (Redis) is unreachable; this job runs as soon as it is back."
RUN_JOB_TASK = "search.run_job"  # the Celery task (search/tasks.py) that runs one job by id
JOB_QUEUE = "celery"  # indexing work: processing uploads, rebuilds, model switches
LOW_PRIORITY_QUEUE = "geosim-low"  # projections for the explorer: never ahead of indexing work
TRAINING_QUEUE = "training"  # model training: minutes to hours, so never in the way of either
_QUEUE_OF_KIND = {Job.Kind.PROJECTION: LOW_PRIORITY_QUEUE, Job.Kind.TRAIN_MODEL: TRAINING_QUEUE}


def job_queue(kind: str) -> str:
    """The queue a job kind runs on (Celery queue, or in-process thread in the embedded mode)."""
    return _QUEUE_OF_KIND.get(kind, JOB_QUEUE)


JobHandler = Callable[[Job, "JobProgress"], dict | None]


@dataclass(frozen=True)
class _Registration:
    handler: JobHandler
    retry_if_interrupted: bool


_handlers: dict[str, _Registration] = {}


def register_job_handler(kind: str, handler: JobHandler, *, retry_if_interrupted: bool = False) -> None:
    """Make ``handler(job, progress)`` run the jobs of ``kind`` (wired in search/services/job_handlers.py).

    ``retry_if_interrupted``: the handler is idempotent, so a job whose worker died gets a fresh pending
    copy (up to MAX_ATTEMPTS runs); otherwise it is only marked failed.
    """
    _handlers[kind] = _Registration(handler, retry_if_interrupted)


def job_handler(kind: str) -> JobHandler:
    """The handler registered for a job kind; ValueError for a kind nobody registered."""
    try:
        return _handlers[kind].handler
    except KeyError:
        raise ValueError(f"No handler for jobs of kind {kind!r}.") from None


def job_retried_if_interrupted(kind: str) -> bool:
    """Whether a job of this kind whose worker died is run again (see register_job_handler)."""
    registration = _handlers.get(kind)
    return registration is not None and registration.retry_if_interrupted


class JobNeedsRebuild(Exception):
    """Raised by a handler that cannot finish until the index is rebuilt (its files are damaged).

    The job is marked failed with the message, then ``request_rebuild`` is called; once the rebuilt
    index is live, :func:`jobs_retry_after_rebuild` runs the job again.
    """

    def __init__(self, message: str, *, request_rebuild: Callable[[], object]) -> None:
        super().__init__(message)
        self.request_rebuild = request_rebuild


_WAITS_FOR_REBUILD = "waits_for_rebuild"  # a key of Job.result


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
    transaction.on_commit(lambda: job_enqueue(job.pk))
    return job


def job_enqueue(job_id: int) -> bool:
    """Send a job to the workers; on a broker failure keep it pending for the sweep and return False."""
    try:
        _send_run_job(job_id)
    except Exception as exc:  # kombu/redis raise several types when the broker is unreachable
        logger.warning("Job %s stays pending: the task queue is unreachable (%s).", job_id, exc)
        Job.objects.filter(pk=job_id, status=Job.Status.PENDING).update(error=QUEUE_UNREACHABLE)
        return False
    return True


def _send_run_job(job_id: int) -> None:
    """Send the run-job task by name, so this module needs no import of the task module."""
    kind = Job.objects.filter(pk=job_id).values_list("kind", flat=True).first()
    queue = job_queue(kind or "")
    if current_app.conf.task_always_eager:
        # In-process tasks (the embedded mode, tests): send_task ignores eager mode, so run the
        # registered task here, on a background thread unless GEOSIM_IN_PROCESS_JOBS=inline.
        def run() -> None:
            current_app.tasks[RUN_JOB_TASK].apply(args=(job_id,))

        if settings.GEOSIM_IN_PROCESS_JOBS == "background":
            in_process.submit(run, queue=queue)
        else:
            run()
    else:
        # One try, no result subscription: with Redis down this fails within the broker timeouts
        # (settings.py) instead of retrying for ~20 s; the sweep sends the job later.
        current_app.send_task(RUN_JOB_TASK, args=(job_id,), queue=queue, retry=False, ignore_result=True)


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
    handler = job_handler(job.kind)
    progress = JobProgress(job)
    beat = _Heartbeat(job.pk) if heartbeat else contextlib.nullcontext()
    try:
        with beat:
            result = handler(job, progress)
    except JobNeedsRebuild as exc:
        # Marked before the rebuild is requested, so the rebuild's retry cannot miss this job.
        logger.warning("Job %s (%s) waits for an index rebuild: %s", job.pk, job.kind, exc)
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED,
            error=str(exc)[:4000],
            result={_WAITS_FOR_REBUILD: True},
            finished_at=timezone.now(),
        )
        try:
            exc.request_rebuild()
        except Exception:  # the next rebuild, whoever asks for it, still retries this job
            logger.exception("Job %s: could not request the index rebuild.", job.pk)
        return
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
    ids = list(Job.objects.filter(status=Job.Status.PENDING, created_at__lte=cutoff).values_list("pk", flat=True))
    sent = sum(job_enqueue(job_id) for job_id in ids)
    if ids:
        logger.info("Sweep: re-sent %s of %s pending jobs.", sent, len(ids))
    return sent


def jobs_recover_stale(*, stale_after: timedelta | None = None) -> list[int]:
    """Fail running jobs whose worker stopped sending heartbeats; retry the idempotent kinds.

    Kinds registered with ``retry_if_interrupted`` (processing, removal, rebuilds) are safe to run again, so
    each gets a fresh pending copy (up to MAX_ATTEMPTS in all): the old index keeps serving meanwhile, and
    the retried rebuild starts again from the stored embeddings. Returns the ids of the jobs marked failed.
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
            if job_retried_if_interrupted(job.kind) and job.attempts < MAX_ATTEMPTS:
                retry = job_create(kind=job.kind, total=job.total, params=job.params, created_by=job.created_by)
                Job.objects.filter(pk=retry.pk).update(attempts=job.attempts)
                logger.warning("Job %s: %s Retrying as job %s.", job.pk, message, retry.pk)
            else:
                logger.warning("Job %s: %s", job.pk, message)
    return recovered


def jobs_retry_after_rebuild() -> list[int]:
    """Run again the jobs that failed waiting for an index rebuild; called once a rebuilt index is live.

    Returns the ids of the new jobs. Each failed job is retried once (its result then names the retry).
    """
    retries = []
    for job in Job.objects.filter(status=Job.Status.FAILED, **{f"result__{_WAITS_FOR_REBUILD}": True}):
        with transaction.atomic():
            claimed = Job.objects.filter(pk=job.pk, **{f"result__{_WAITS_FOR_REBUILD}": True}).update(result={})
            if not claimed:
                continue  # another rebuild retried it first
            retry = job_create(kind=job.kind, total=job.total, params=job.params, created_by=job.created_by)
            Job.objects.filter(pk=job.pk).update(result={"retried_as": retry.pk})
        logger.info("Job %s, which waited for the index rebuild, runs again as job %s.", job.pk, retry.pk)
        retries.append(retry.pk)
    return retries


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
