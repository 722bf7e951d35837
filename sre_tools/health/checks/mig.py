"""Health checks: mig (filled in by the health engine work)."""
