"""The health report behind /healthz: is the database usable, and is the live index?"""

from __future__ import annotations

from django.db import connection

from search import live_index
from search.models import Image


def health_report() -> tuple[bool, dict]:
    """(healthy, details). An empty collection with no index yet is healthy; images without a usable index are not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = {"ok": True}
    except Exception as exc:  # any driver error means the same to a health check
        database = {"ok": False, "error": f"{type(exc).__name__}: the database is unreachable."}
        return False, {"database": database, "index": {"ok": False, "error": "unknown while the database is down"}}
    try:
        loaded = live_index.current()
        index = {
            "ok": True,
            "version": loaded.version.version,
            "vectors": loaded.index.ntotal,
            "kind": loaded.index.kind,
            "model_version": loaded.version.model_version.name,
        }
    except live_index.IndexUnavailable as exc:
        empty = not Image.objects.exists()
        index = {"ok": empty, "state": "empty" if empty else "unusable", "error": str(exc).split(". ")[0] + "."}
    except Exception as exc:
        index = {"ok": False, "state": "unusable", "error": f"{type(exc).__name__}."}
    return database["ok"] and index["ok"], {"database": database, "index": index}
