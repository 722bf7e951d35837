"""Health checks: clocks (filled in by the health engine work)."""
