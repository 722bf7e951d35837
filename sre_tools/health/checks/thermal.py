"""Health checks: thermal (filled in by the health engine work)."""
