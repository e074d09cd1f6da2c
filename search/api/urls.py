"""/api/v1/ — see CONTRACT.md's HTTP table; the OpenAPI schema at schema/ documents every endpoint."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .views import duplicates, images, jobs, models, root, search

app_name = "api"

urlpatterns = [
    path("", root.ApiRootView.as_view(), name="root"),
    path("search/", search.SearchView.as_view(), name="search"),
    path("images/", images.ImageListView.as_view(), name="image-list"),
    path("images/<int:pk>/", images.ImageDetailView.as_view(), name="image-detail"),
    path("images/<int:pk>/similar/", search.SimilarImagesView.as_view(), name="image-similar"),
    path("index/rebuild/", jobs.IndexRebuildView.as_view(), name="index-rebuild"),
    path("models/", models.ModelListView.as_view(), name="model-list"),
    path("models/train/", models.ModelTrainView.as_view(), name="model-train"),
    path("models/<int:pk>/activate/", models.ModelActivateView.as_view(), name="model-activate"),
    path("duplicates/", duplicates.DuplicateListView.as_view(), name="duplicate-list"),
    path("duplicates/find/", duplicates.DuplicateFindView.as_view(), name="duplicate-find"),
    path("duplicates/<int:pk>/resolve/", duplicates.DuplicateResolveView.as_view(), name="duplicate-resolve"),
    path("jobs/", jobs.JobListView.as_view(), name="job-list"),
    path("jobs/<int:pk>/", jobs.JobDetailView.as_view(), name="job-detail"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
