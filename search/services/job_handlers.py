"""Which service function runs each kind of background job: the one place job kinds are wired.

Handlers live in the service module of their capability (and import :mod:`search.services.jobs` for
``JobProgress`` and ``job_create``); the job service only knows this registry, so no service needs to
import another to dispatch. A new kind of job is a ``Job.Kind`` choice plus one line here.
Called once from :meth:`search.apps.SearchConfig.ready`, in web processes, workers and commands alike.
"""

from __future__ import annotations

from search.models import Job
from search.services import archive_import, duplicates, indexing, model_training, processing, projection
from search.services.jobs import register_job_handler


def register_job_handlers() -> None:
    """Register the handler of every job kind."""
    register_job_handler(Job.Kind.PROCESS, processing.images_process, retry_if_interrupted=True)
    register_job_handler(Job.Kind.REMOVE, processing.images_unindex, retry_if_interrupted=True)
    # A rebuild starts from the stored embeddings and its activation is one commit, so a rebuild whose
    # worker died is safe to run again: another worker (another machine) finishes it.
    register_job_handler(Job.Kind.REINDEX, indexing.index_rebuild, retry_if_interrupted=True)
    register_job_handler(Job.Kind.ACTIVATE_MODEL, indexing.index_rebuild, retry_if_interrupted=True)
    # Safe to run again: it starts from whatever version is live and skips when there is nothing to fold.
    register_job_handler(Job.Kind.COMPACT_INDEX, indexing.index_compact, retry_if_interrupted=True)
    register_job_handler(Job.Kind.PROJECTION, projection.projection_compute)
    register_job_handler(Job.Kind.IMPORT, archive_import.archive_import)
    register_job_handler(Job.Kind.TRAIN_MODEL, model_training.model_train)
    register_job_handler(Job.Kind.DUPLICATES, duplicates.duplicates_find, retry_if_interrupted=True)
