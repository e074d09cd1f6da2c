from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "GeoSim search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at module level: Django loads models only after every app config exists.
        # signals connects receivers, tasks registers the Celery tasks, checks the system checks.
        from search import checks, live_index, signals, tasks  # noqa: F401
        from search.services.indexing import reindex_request
        from search.services.job_handlers import register_job_handlers

        register_job_handlers()
        live_index.on_index_damaged(reindex_request)
