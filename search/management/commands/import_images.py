"""python manage.py import_images PATH [--label LABEL]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.archives import ArchiveRejected, count_files
from search.imaging import ImageRejected
from search.services.metadata import images_import_path_with_metadata
from search.stored_files import StorageFailed


class Command(BaseCommand):
    help = (
        "Import images from a class-per-folder tree (class = parent folder name) or a .zip/.tar/.tar.gz/.tar.xz "
        "of one. Exact duplicates are skipped; bad files are reported and skipped; embedding is queued."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="folder or archive")
        parser.add_argument("--label", help="rock type for every image, instead of the parent folder name")
        parser.add_argument("--source", help="where the images came from, recorded on each (default: PATH's name)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(
        self, *args, path: Path, label: str | None, source: str | None, no_progress: bool, verbosity: int, **options
    ) -> None:
        path = path.expanduser()
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        try:
            total = count_files(path)
        except ArchiveRejected as exc:
            raise CommandError(str(exc)) from None
        bar = tqdm(total=total, unit="img", desc=f"Importing {path.name}", disable=no_progress or verbosity == 0)

        def on_progress(summary) -> None:
            # The summary is the one record of the counts: the bar ends on the numbers the last line prints.
            bar.update(summary.files - bar.n)
            bar.set_postfix(summary.counts(), refresh=False)

        try:
            summary, metadata = images_import_path_with_metadata(
                path, label=label, source=source or path.name, on_progress=on_progress
            )
        except (ArchiveRejected, ImageRejected, StorageFailed) as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        for name, reason in summary.rejected:
            self.stderr.write(f"rejected {name}: {reason}")
        self.stdout.write(f"{path}: {summary.line()}; processing queued as {len(summary.job_ids)} job(s).")
        if metadata is not None:
            for problem in metadata.problems:
                self.stderr.write(f"metadata.csv:{problem.line}: {problem.message}")
            self.stdout.write(f"metadata.csv: {metadata.line()}.")
        waiting = summary.jobs_waiting_for_queue()
        if waiting:
            self.stdout.write(
                f"{waiting} job(s) waiting for the task queue, which is unreachable: the images are stored and "
                "will be processed as soon as a worker can reach it again."
            )
