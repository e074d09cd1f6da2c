"""System checks: deployment mistakes GeoSim can survive but an operator should hear about."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from geosim_site.staticfiles import COLLECTSTATIC_COMMAND, manifest_path


@checks.register(checks.Tags.staticfiles, deploy=True)
def check_static_files_collected(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """`check --deploy`: warn when production runs without collected static files (the site works, slower)."""
    if settings.DEBUG or manifest_path().exists():
        return []
    return [
        checks.Warning(
            f"Static files have not been collected into {settings.STATIC_ROOT}: pages work, but CSS and "
            "scripts are served uncompressed from the source folders without long-lived caching.",
            hint=f"Run `{COLLECTSTATIC_COMMAND}` once after each install or upgrade, then restart.",
            id="geosim.W001",
        )
    ]
