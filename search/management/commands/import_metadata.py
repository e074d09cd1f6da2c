"""python manage.py import_metadata FILE.csv [--dry-run] [--skip-bad-rows]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from search.services.metadata import KEY_COLUMNS, VALUE_COLUMNS, MetadataFileRejected, metadata_import_csv


class Command(BaseCommand):
    help = (
        f"Set sample metadata from a CSV file. Rows name their image by {', '.join(KEY_COLUMNS)}; value columns: "
        f"{', '.join(VALUE_COLUMNS)} (tags ';'-separated; an empty cell leaves the field as it is). A file with "
        "any problem changes nothing unless --skip-bad-rows is given."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="a UTF-8 CSV file with a header line")
        parser.add_argument("--dry-run", action="store_true", help="check and report, change nothing")
        parser.add_argument(
            "--skip-bad-rows", action="store_true", help="apply the good rows even if others have problems"
        )

    def handle(self, *args, file: Path, dry_run: bool, skip_bad_rows: bool, **options) -> None:
        try:
            data = file.expanduser().read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        try:
            report = metadata_import_csv(data, dry_run=dry_run, skip_bad_rows=skip_bad_rows)
        except MetadataFileRejected as exc:
            raise CommandError(f"{file}: {exc}") from None
        for problem in report.problems:
            self.stderr.write(f"{file}:{problem.line}: {problem.message}")
        self.stdout.write(f"{file}: {report.line()}.")
        if report.problems and not skip_bad_rows:
            raise CommandError(
                f"{len(report.problems)} problem(s); nothing was changed. Fix them, or rerun with --skip-bad-rows."
            )
