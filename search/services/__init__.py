"""Services: the functions that change GeoSim's data. Views, tasks and commands call these."""
