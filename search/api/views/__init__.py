"""API views, one module per capability: search, images, jobs (background work and index rebuilds)."""
