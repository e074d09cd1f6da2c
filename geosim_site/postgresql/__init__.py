"""GeoSim's PostgreSQL database backend (``ENGINE = "geosim_site.postgresql"``): see :mod:`.base`."""
