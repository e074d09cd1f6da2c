"""python manage.py register_model CHECKPOINT [--name NAME] [--activate] [--wait]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from search.management.waiting import index_live_line, wait_for_job
from search.services.indexing import model_version_activate
from search.services.model_versions import ModelVersionRejected, model_version_register
from training.checkpoint import CheckpointError


class Command(BaseCommand):
    help = "Register a checkpoint trained elsewhere as a model version; --activate switches searches to it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("checkpoint", type=Path, help="a checkpoint written by `python -m training.train`")
        parser.add_argument("--name", help="name of the model version (default: file name and hash)")
        parser.add_argument("--activate", action="store_true", help="re-embed every image with it and switch over")
        parser.add_argument("--wait", action="store_true", help="with --activate: wait until its index is live")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait at most (with --wait)")

    def handle(
        self,
        *args,
        checkpoint: Path,
        name: str | None,
        activate: bool,
        wait: bool,
        timeout: float,
        verbosity: int,
        **options,
    ) -> None:
        try:
            version = model_version_register(checkpoint, name=name)
        except (CheckpointError, ModelVersionRejected) as exc:
            raise CommandError(str(exc)) from None
        heldout = version.metrics.get("heldout") or {}
        numbers = "  ".join(f"{key} {value:.4f}" for key, value in heldout.items())
        self.stdout.write(f"Model version {version.pk} {version.name!r} ({version.embedding_dim}-d). {numbers}")
        if not activate:
            if wait:
                self.stdout.write("Nothing to wait for without --activate.")
            return
        job = model_version_activate(version)
        self.stdout.write(f"Activation job {job.pk}: re-embedding every image with {version.name}.")
        if wait:
            job = wait_for_job(job, desc="Activating", timeout=timeout, quiet=verbosity == 0)
            self.stdout.write(index_live_line(job))
