"""The site's URLs, with media served from the test's own MEDIA_ROOT (the site's map fixes it at import)."""

from django.conf import settings
from django.urls import re_path
from django.views.static import serve

from geosim_site.urls import urlpatterns as site_patterns


def _media(request, path):
    return serve(request, path, document_root=settings.MEDIA_ROOT)


urlpatterns = [re_path(r"^media/(?P<path>.*)$", _media), *site_patterns]
