"""Health checks: memory (filled in by the health engine work)."""
