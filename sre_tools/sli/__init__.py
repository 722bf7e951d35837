"""SLI sources: the embedded SQLite store (default) and the Prometheus HTTP API."""
