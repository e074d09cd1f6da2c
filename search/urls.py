"""Page URLs (the REST API lives under /api/, see geosim_site/urls.py)."""

from django.urls import path

from search import views, views_duplicates

urlpatterns = [
    path("", views.home, name="home"),
    path("images/<int:pk>/", views.image_detail, name="image_detail"),
    path("images/<int:pk>/preview", views.image_preview, name="image_preview"),
    path("explore/", views.explore, name="explore"),
    path("explore/status.json", views.explore_status, name="explore_status"),
    path("explore/data/<str:name>", views.explore_data, name="explore_data"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/status.json", views.jobs_status, name="jobs_status"),
    path("duplicates/", views_duplicates.duplicates, name="duplicates"),
    path("duplicates/find", views_duplicates.duplicates_find, name="duplicates_find"),
    path("duplicates/<int:pk>/", views_duplicates.duplicate_resolve, name="duplicate_resolve"),
    path("healthz", views.healthz, name="healthz"),
]
