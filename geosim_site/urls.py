"""URL map: pages, the REST API, the admin and static/media serving."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from geosim_site.media import serve_media

handler500 = "search.error_views.server_error"  # a database outage is a 503 page, not a 500

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("search.api.urls")),
    path("", include("search.urls")),
]

if settings.DEBUG or settings.GEOSIM_SERVE_MEDIA:
    # Media are content-addressed images; in production a front proxy may serve them instead.
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", serve_media, name="media")]
