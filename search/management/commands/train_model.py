"""python manage.py train_model [--epochs N] [--name NAME] [--activate] [--wait]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from search.management.waiting import index_live_line, wait_for_job
from search.models import Job
from search.services.model_training import TrainingRejected, training_request


class Command(BaseCommand):
    help = (
        "Train a model on the collection's labelled images (rock types with at least 10 images), compare it "
        "with the active model on the held-out split and register it; --activate switches searches to it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--epochs", type=int, help="training epochs (default: the training recipe's)")
        parser.add_argument("--name", help="name of the new model version (default: trained-<date-time>)")
        parser.add_argument("--activate", action="store_true", help="switch searches to it once trained")
        parser.add_argument(
            "--wait", action="store_true", help="wait until it is registered (with --activate: until its index is live)"
        )
        parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait at most (with --wait)")

    def handle(
        self,
        *args,
        epochs: int | None,
        name: str | None,
        activate: bool,
        wait: bool,
        timeout: float,
        verbosity: int,
        **options,
    ) -> None:
        try:
            job = training_request(epochs=epochs, name=name, activate=activate)
        except TrainingRejected as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Training job {job.pk} started (model {job.params['name']!r}); progress on /jobs/.")
        if not wait:
            return
        job = wait_for_job(job, desc="Training", timeout=timeout, quiet=verbosity == 0, unit="steps")
        self.stdout.write(f"Registered model version {job.result['model_version_id']}: {job.result['note']}.")
        if activate:
            activation = Job.objects.get(pk=job.result["activation_job"])
            activation = wait_for_job(activation, desc="Activating", timeout=timeout, quiet=verbosity == 0)
            self.stdout.write(index_live_line(activation))
