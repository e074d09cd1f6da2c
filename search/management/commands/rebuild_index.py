"""python manage.py rebuild_index [--wait]"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.models import Job
from search.services.indexing import reindex_request


class Command(BaseCommand):
    help = "Start a reindex job (embedding first whatever is not embedded yet); --wait blocks until it is live."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wait", action="store_true", help="wait until the new index is live")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait at most (with --wait)")

    def handle(self, *args, wait: bool, timeout: float, verbosity: int, **options) -> None:
        job = reindex_request()
        self.stdout.write(f"Reindex job {job.pk} ({job.status}).")
        if not wait:
            return
        bar = tqdm(total=100, unit="%", desc="Reindexing", disable=verbosity == 0)
        deadline = time.monotonic() + timeout
        while True:
            job.refresh_from_db()
            bar.n = round(job.progress * 100)
            bar.set_postfix_str(f"{job.done}/{job.total} images", refresh=True)
            if job.is_finished or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        bar.close()
        if job.status == Job.Status.SUCCEEDED:
            result = job.result
            self.stdout.write(
                f"Index version {result.get('index_version')} is live: {result.get('vectors')} vectors "
                f"({result.get('kind')}, model {result.get('model_version')})."
            )
        elif job.status == Job.Status.FAILED:
            raise CommandError(f"Reindex job {job.pk} failed: {job.error}")
        else:
            raise CommandError(f"Reindex job {job.pk} is still {job.status} after {timeout:.0f} s.")
