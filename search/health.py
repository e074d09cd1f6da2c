"""The health report behind /healthz: is the database usable, and is the live index?"""

from __future__ import annotations

from django.db import connection

from search import live_index
from search.models import Image


def health_report() -> tuple[bool, dict]:
    """(healthy, details). An empty collection with no index yet is healthy; images without a usable index are not.

    ``details["status"]``: "ok"; "degraded" while this process serves an index whose files on disk were
    lost or damaged (a rebuild has been requested: ``index.rebuild_job``); "unavailable" when unhealthy.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = {"ok": True}
    except Exception as exc:  # any driver error means the same to a health check
        database = {"ok": False, "error": f"{type(exc).__name__}: the database is unreachable."}
        index = {"ok": False, "error": "unknown while the database is down"}
        return False, {"status": "unavailable", "database": database, "index": index}
    try:
        loaded = live_index.current()
        index = {
            "ok": True,
            "version": loaded.version.version,
            "vectors": loaded.index.ntotal,
            "segments": loaded.index.segment_count,
            "kind": loaded.index.kind,
            "model_version": loaded.version.model_version.name,
        }
        damage = live_index.files_damage()
        if damage:
            index.update(state="damaged", error=_first_sentence(damage.message), rebuild_job=damage.rebuild_job)
    except live_index.IndexUnavailable as exc:
        empty = not Image.objects.exists()
        index = {"ok": empty, "state": "empty" if empty else "unusable", "error": _first_sentence(str(exc))}
    except Exception as exc:
        index = {"ok": False, "state": "unusable", "error": f"{type(exc).__name__}."}
    healthy = database["ok"] and index["ok"]
    status = "unavailable" if not healthy else "degraded" if index.get("state") == "damaged" else "ok"
    return healthy, {"status": status, "database": database, "index": index}


def _first_sentence(text: str) -> str:
    # The rest may name files on disk: fine for the log, not for an anonymous endpoint.
    return text.split(". ")[0].rstrip(".") + "."
