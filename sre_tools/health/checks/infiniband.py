"""Health checks: infiniband (filled in by the health engine work)."""
