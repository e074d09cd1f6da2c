"""python manage.py demo — what `make demo` runs: a working GeoSim on this machine in one command.

Steps, each idempotent so a second run is quick: migrate; create (or reset) an admin login; load
images (the DATASET folder/archive, or generated demo textures when the collection is empty); make
sure a model is active (the shipped checkpoint, or a short training run on the collection when
there is none); build the index; for a collection of large images (photos, micrographs), start
training a model for them in the background, activated when it is ready; serve on 127.0.0.1:PORT.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from search.demo_textures import write_demo_dataset
from search.models import Image, ModelVersion
from search.services.indexing import reindex_request
from search.services.model_training import TrainingRejected, training_request
from training.geometry import choose_geometry

DEMO_MODEL_PREFIX = "demo-trained-"


class Command(BaseCommand):
    help = "Set up a demo collection, model and index on the embedded default, then serve it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset", type=Path, help="folder or archive of class-per-folder images")
        parser.add_argument("--per-class", type=int, default=200, help="generated images per rock type")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="prepare everything, do not serve")

    def handle(self, *args, dataset: Path | None, per_class: int, port: int, no_serve: bool, **options) -> None:
        self._step("Database")
        call_command("migrate", interactive=False, verbosity=0)
        password = self._admin_login()

        self._step("Images")
        source = dataset
        if source is not None and not source.exists():
            raise CommandError(f"DATASET={source} does not exist.")
        if source is None and not Image.objects.exists():
            source = Path(settings.GEOSIM_DATA_DIR) / "demo-images"
            self.stdout.write(f"No DATASET given: generating {per_class} demo textures per rock type in {source}")
            write_demo_dataset(source, per_class=per_class)

        self._step("Model")
        self._ensure_checkpoint(source)

        if source is not None:
            call_command("import_images", str(source), stdout=self.stdout, stderr=self.stderr)
        self.stdout.write(f"{Image.objects.count()} images in the collection.")

        self._step("Index")
        job = reindex_request()
        job.refresh_from_db()
        if job.status != job.Status.SUCCEEDED:
            call_command("rebuild_index", wait=True, stdout=self.stdout, stderr=self.stderr)
        else:
            self.stdout.write(f"Index version {job.result.get('index_version')}: {job.result.get('vectors')} vectors.")

        self._train_for_large_images(serving=not no_serve)

        url = f"http://127.0.0.1:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nGeoSim is ready at {url}"))
        self.stdout.write(f"Admin: {url}admin/  user: admin  password: {password}\n")
        if not no_serve:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True)

    def _train_for_large_images(self, *, serving: bool) -> None:
        """Large images: train a model for them in the background while the shipped one already serves.

        The shipped model sees a 28 px downscale of each image, which erases the grain of large photos and
        micrographs; a model trained on their own crops does much better. The site is up at once with the
        shipped model, and switches to the trained one (re-embed + atomic swap) when it is ready.
        """
        sizes = list(Image.objects.values_list("width", "height")[:5000])
        if not sizes or not choose_geometry(sizes).tiled:
            return  # small images: the shipped 28 px model is the right one
        if ModelVersion.objects.filter(name__startswith=DEMO_MODEL_PREFIX).exists():
            return  # trained by an earlier run of the demo
        self._step("Model for these large images")
        if not serving:
            self.stdout.write("Large images: train a model for them with `python manage.py train_model --activate`.")
            return
        try:
            job = training_request(name=f"{DEMO_MODEL_PREFIX}{timezone.now():%Y%m%d-%H%M%S}", activate=True)
        except TrainingRejected as exc:
            self.stdout.write(f"Large images, but no model can be trained for them: {exc}")
            return
        self.stdout.write(
            f"Large images: training a model for them in the background (job {job.pk}, progress on /jobs/). "
            "Searches use the shipped model until the trained one is live."
        )

    def _step(self, title: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"== {title}"))

    def _admin_login(self) -> str:
        """Create the demo admin, or give it a fresh password; return the password to print."""
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def _ensure_checkpoint(self, data: Path | None) -> None:
        """The shipped checkpoint, or — when it is missing — a short training run on the images."""
        checkpoint = Path(settings.GEOSIM_DEFAULT_CHECKPOINT)
        if checkpoint.exists():
            self.stdout.write(f"Using the shipped model {checkpoint}.")
            return
        trained = Path(settings.GEOSIM_MODEL_DIR) / "demo-trained.pt"
        if not trained.exists():
            if data is None or not data.is_dir():
                raise CommandError(f"No model: {checkpoint} is missing and there is no image folder to train on.")
            self.stdout.write(f"{checkpoint} is missing: training a small model on {data} (a few minutes)…")
            command = [
                sys.executable,
                "-m",
                "training.train",
                "--data",
                str(data),
                "--out",
                str(trained),
                "--epochs",
                "5",
            ]
            if subprocess.run(command, cwd=settings.BASE_DIR, check=False).returncode != 0:
                raise CommandError("Training the demo model failed (see above).")
        settings.GEOSIM_DEFAULT_CHECKPOINT = trained
