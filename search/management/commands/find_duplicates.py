"""python manage.py find_duplicates [--wait]"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from search.management.waiting import wait_for_job
from search.services.duplicates import duplicates_request


class Command(BaseCommand):
    help = "Start a near-duplicates job (groups to review at /duplicates/); --wait blocks until it is done."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wait", action="store_true", help="wait until the groups are found")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait at most (with --wait)")

    def handle(self, *args, wait: bool, timeout: float, verbosity: int, **options) -> None:
        job = duplicates_request()
        self.stdout.write(f"Near-duplicates job {job.pk} ({job.status}).")
        if wait:
            job = wait_for_job(job, desc="Finding near-duplicates", timeout=timeout, quiet=verbosity == 0)
            result = job.result
            self.stdout.write(
                f"{result['groups']} group(s) of near-duplicates ({result['images']} images) to review at /duplicates/."
            )
