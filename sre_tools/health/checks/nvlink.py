"""Health checks: nvlink (filled in by the health engine work)."""
