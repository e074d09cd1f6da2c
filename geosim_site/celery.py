"""The Celery app. Tasks live in ``search/tasks.py``; configuration comes from CELERY_* settings."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "geosim_site.settings")

app = Celery("geosim")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
