"""python manage.py rebuild_index [--wait]"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from search.management.waiting import index_live_line, wait_for_job
from search.services.indexing import reindex_request


class Command(BaseCommand):
    help = "Start a reindex job (embedding first whatever is not embedded yet); --wait blocks until it is live."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wait", action="store_true", help="wait until the new index is live")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait at most (with --wait)")

    def handle(self, *args, wait: bool, timeout: float, verbosity: int, **options) -> None:
        job = reindex_request()
        self.stdout.write(f"Reindex job {job.pk} ({job.status}).")
        if wait:
            job = wait_for_job(job, desc="Reindexing", timeout=timeout, quiet=verbosity == 0)
            self.stdout.write(index_live_line(job))
