"""GeoSim's REST API (DRF), mounted at /api/v1/: search, images, index jobs, OpenAPI schema and docs.

Who may do what: reads and searches are public; writes (uploads, index rebuilds) and job status need a
staff user, logged in (session) or by token (``Authorization: Token <key>``, see ``create_api_token``).
"""
