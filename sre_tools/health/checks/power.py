"""Health checks: power (filled in by the health engine work)."""
