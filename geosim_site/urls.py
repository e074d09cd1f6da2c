"""URL map: pages, the REST API, the admin and static/media serving."""

from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from geosim_site.media import serve_media

handler500 = "search.error_views.server_error"  # a database outage is a 503 page, not a 500

urlpatterns = [
    # Browsers ask for /favicon.ico on pages without an icon link (the admin, the API's JSON). Lazy: the
    # static file's (hashed) name is known only once the storage is ready.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("geosim/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("search.api.urls")),
    path("", include("search.urls")),
]

if settings.DEBUG or settings.GEOSIM_SERVE_MEDIA:
    # Media are content-addressed images; in production a front proxy may serve them instead.
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", serve_media, name="media")]
