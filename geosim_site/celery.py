"""The Celery app. Tasks live in ``search/tasks.py``; configuration comes from CELERY_* settings."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "geosim_site.settings")

app = Celery("geosim")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Indexing work and the explorer's projections travel on separate queues, so a queued t-SNE never
# sits ahead of an upload's processing; a worker started without -Q consumes both.
app.conf.task_queues = (Queue("celery"), Queue("geosim-low"))
app.conf.task_default_queue = "celery"
app.autodiscover_tasks()
