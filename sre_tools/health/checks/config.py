"""Health checks: config (filled in by the health engine work)."""
