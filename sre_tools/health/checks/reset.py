"""Health checks: reset (filled in by the health engine work)."""
