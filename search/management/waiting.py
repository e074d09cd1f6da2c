"""Following a job from the command line: a progress bar until it finishes (``--wait`` of several commands)."""

from __future__ import annotations

import time

from django.core.management.base import CommandError
from tqdm import tqdm

from search.models import Job

POLL_SECONDS = 0.25


def wait_for_job(job: Job, *, desc: str, timeout: float, quiet: bool = False, unit: str = "images") -> Job:
    """Show the job's progress until it ends; return it when it succeeded, raise CommandError otherwise."""
    bar = tqdm(total=100, unit="%", desc=desc, disable=quiet)
    deadline = time.monotonic() + timeout
    try:
        while True:
            job.refresh_from_db()
            bar.n = round(job.progress * 100)
            note = (job.result or {}).get("note") if job.status == Job.Status.RUNNING else None
            bar.set_postfix_str(note or f"{job.done}/{job.total} {unit}", refresh=True)
            if job.is_finished or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
    finally:
        bar.close()
    if job.status == Job.Status.FAILED:
        raise CommandError(f"{job.get_kind_display()} job {job.pk} failed: {job.error}")
    if job.status != Job.Status.SUCCEEDED:
        raise CommandError(f"{job.get_kind_display()} job {job.pk} is still {job.status} after {timeout:.0f} s.")
    return job


def index_live_line(job: Job) -> str:
    """One line saying which index version a finished rebuild/activation job made live."""
    result = job.result
    return (
        f"Index version {result.get('index_version')} is live: {result.get('vectors')} vectors "
        f"({result.get('kind')}, model {result.get('model_version')})."
    )
