"""Health checks: fabric (filled in by the health engine work)."""
