"""`manage.py generate_demo_images OUT_DIR`: write procedural demo textures, one folder per rock type."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from search.demo_textures import MAX_SIZE, MIN_SIZE, ROCK_TYPES, write_demo_dataset


class Command(BaseCommand):
    help = (
        "Write generated rock-like textures (not real photographs) to OUT_DIR/<rock_type>/, "
        "ready for import_images, so a fresh install has a searchable collection."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
        parser.add_argument("--per-class", type=int, default=100, help="images per rock type (default 100)")
        parser.add_argument("--size", type=int, default=28, help="width and height in pixels (default 28)")
        parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")

    def handle(self, *args, out_dir: Path, per_class: int, size: int, seed: int, **options) -> None:
        if per_class < 1:
            raise CommandError(f"--per-class must be at least 1, got {per_class}")
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise CommandError(f"--size must be from {MIN_SIZE} to {MAX_SIZE} pixels, got {size}")
        if seed < 0:
            raise CommandError(f"--seed must be 0 or more, got {seed}")
        if out_dir.exists() and not out_dir.is_dir():
            raise CommandError(f"{out_dir} exists and is not a folder")
        try:
            written = write_demo_dataset(
                out_dir, per_class=per_class, size=size, seed=seed, progress=options["verbosity"] > 0
            )
        except OSError as error:
            raise CommandError(f"could not write demo images to {out_dir}: {error}") from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {written} generated demo images ({per_class} per class x {len(ROCK_TYPES)} classes, "
                f"{size}x{size} px, seed {seed}) to {out_dir}"
            )
        )
