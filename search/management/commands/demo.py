"""python manage.py demo — what `make demo` runs: a working GeoSim on this machine in one command.

Steps, each idempotent so a second run is quick: migrate; create (or reset) an admin login and the
``curator`` user whose API token the README uses; load images; make sure a model is active (the
shipped checkpoint, or a short training run on the collection when there is none); build the index;
for a collection of large images (photos, micrographs), start training a model for them in the
background, activated when it is ready; serve on 127.0.0.1:PORT.

One demo collection at a time: the images a demo imports are recorded with the source
``demo: <dataset name>``. With DATASET, the images of an earlier demo's other dataset (the generated
textures, say) are removed first, so searches only ever answer from the dataset asked for; images
added outside the demo (uploads, ``import_images``) are kept, and the demo says how many. Without
DATASET, the collection is kept as it is, and demo textures are generated only into an empty one.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q
from django.utils import timezone
from rest_framework.authtoken.models import Token

from search.demo_textures import write_demo_dataset
from search.models import Image, ModelVersion
from search.services.indexing import reindex_request
from search.services.model_training import TrainingRejected, training_request
from training.geometry import choose_geometry

DEMO_MODEL_PREFIX = "demo-trained-"

DEMO_SOURCE_PREFIX = "demo: "
GENERATED_SOURCE = DEMO_SOURCE_PREFIX + "generated textures"
# Demos before sources were recorded this way imported their textures from var/demo-images.
LEGACY_GENERATED_SOURCE = "demo-images"
CURATOR = "curator"
# What the README's token may do: upload images and rebuild the index (the admin's rules for both), follow jobs.
CURATOR_PERMISSIONS = (
    "add_image",
    "change_image",
    "view_image",
    "change_indexversion",
    "view_indexversion",
    "view_job",
)


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
        token = self._curator_token()

        self._step("Images")
        if dataset is not None and not dataset.exists():
            raise CommandError(f"DATASET={dataset} does not exist.")
        source, source_name = self._images_to_load(dataset, per_class)

        self._step("Model")
        self._ensure_checkpoint(source)

        if source is not None:
            call_command("import_images", str(source), source=source_name, stdout=self.stdout, stderr=self.stderr)
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
        self.stdout.write(f"Admin: {url}admin/  user: admin  password: {password}")
        self.stdout.write(f"API token of the staff user {CURATOR!r} (uploads, rebuilds): {token}\n")
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

    def _curator_token(self) -> str:
        """The staff user the README's `create_api_token curator` names: may upload and rebuild, nothing else."""
        user, created = get_user_model().objects.get_or_create(username=CURATOR, defaults={"is_staff": True})
        if created:
            user.set_unusable_password()  # a token for scripts; people log in as admin
            user.save()
        permissions = Permission.objects.filter(content_type__app_label="search", codename__in=CURATOR_PERMISSIONS)
        user.user_permissions.add(*permissions)
        return Token.objects.get_or_create(user=user)[0].key

    def _images_to_load(self, dataset: Path | None, per_class: int) -> tuple[Path | None, str]:
        """The folder or archive to import (None: keep the collection) and the source its images get."""
        if dataset is None:
            if Image.objects.exists():
                self._describe_kept_collection()
                return None, ""
            folder = Path(settings.GEOSIM_DATA_DIR) / "demo-images"
            self.stdout.write(f"No DATASET given: generating {per_class} demo textures per rock type in {folder}")
            write_demo_dataset(folder, per_class=per_class)
            return folder, GENERATED_SOURCE
        source_name = DEMO_SOURCE_PREFIX + dataset.name
        earlier = Image.objects.filter(
            Q(source__startswith=DEMO_SOURCE_PREFIX) | Q(source=LEGACY_GENERATED_SOURCE)
        ).exclude(source=source_name)
        removed = earlier.count()
        if removed:
            names = ", ".join(
                sorted({s.removeprefix(DEMO_SOURCE_PREFIX) for s in earlier.values_list("source", flat=True)})
            )
            self.stdout.write(
                f"Removing the {removed} images of the previous demo ({names}): the demo shows {dataset.name}."
            )
            earlier.delete()
        others = Image.objects.exclude(source=source_name).count()
        if others:
            self.stdout.write(f"Keeping {others} images added outside `make demo` (uploads, import_images).")
        return dataset, source_name

    def _describe_kept_collection(self) -> None:
        by_source = Image.objects.values("source").annotate(n=Count("id")).order_by("-n")
        parts = ", ".join(
            f"{row['n']} from {row['source'].removeprefix(DEMO_SOURCE_PREFIX) or 'uploads'}" for row in by_source
        )
        self.stdout.write(
            f"Keeping the collection as it is ({parts}); `make demo DATASET=…` replaces the demo's images."
        )

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
